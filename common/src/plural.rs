//! Counts in messages: "1 file", "2 files". One helper for backupctl and the daemon, so no
//! message says "1 snapshots".

/// `n` and the noun, in the plural unless `n` is 1. `noun` is the singular; regular English
/// plurals are formed here ("file" → "files", "repository" → "repositories", "match" →
/// "matches"); [`count_as`] takes an irregular plural.
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        return format!("1 {noun}");
    }
    format!("{n} {}", plural(noun))
}

/// `n` and `singular` or `plural` (for nouns [`count`] does not inflect right).
pub fn count_as(n: impl Into<u64>, singular: &str, plural: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { singular } else { plural })
}

fn plural(noun: &str) -> String {
    let consonant_y = noun.strip_suffix('y').filter(|stem| {
        stem.chars()
            .last()
            .is_some_and(|c| !matches!(c, 'a' | 'e' | 'i' | 'o' | 'u'))
    });
    if let Some(stem) = consonant_y {
        return format!("{stem}ies");
    }
    if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|s| noun.ends_with(s))
    {
        return format!("{noun}es");
    }
    format!("{noun}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_and_everything_else_plural() {
        assert_eq!(count(1u64, "snapshot"), "1 snapshot");
        assert_eq!(count(0u64, "snapshot"), "0 snapshots");
        assert_eq!(count(2u32, "file"), "2 files");
        assert_eq!(count(1u32, "repository"), "1 repository");
        assert_eq!(count(3u32, "repository"), "3 repositories");
        assert_eq!(count(2u32, "day"), "2 days");
        assert_eq!(count(2u32, "match"), "2 matches");
        assert_eq!(count(2u32, "dead-letter job"), "2 dead-letter jobs");
        assert_eq!(count_as(1u32, "other", "others"), "1 other");
    }
}
