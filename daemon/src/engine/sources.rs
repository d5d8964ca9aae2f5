//! What a backup covers: its sources normalised to absolute paths, the directories between `/`
//! and them (the root tree mirrors absolute paths), and a quick scan of the totals for the
//! progress ETA.

use super::excludes::Excludes;
use super::progress::Progress;
use super::EngineError;
use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, PathBuf};
use tokio_util::sync::CancellationToken;

/// Absolute, lexically normalised, de-duplicated sources (a source inside another is dropped).
pub fn normalize_sources(paths: &[PathBuf]) -> Result<Vec<PathBuf>, EngineError> {
    if paths.is_empty() {
        return Err(EngineError::InvalidArgument("no paths to back up".into()));
    }
    let mut out: Vec<PathBuf> = Vec::new();
    for p in paths {
        let abs = if p.is_absolute() {
            p.clone()
        } else {
            std::env::current_dir()
                .map_err(|e| EngineError::Source {
                    path: p.display().to_string(),
                    reason: e.to_string(),
                })?
                .join(p)
        };
        let mut clean = PathBuf::from("/");
        for c in abs.components() {
            match c {
                Component::Normal(n) => clean.push(n),
                Component::ParentDir => {
                    clean.pop();
                }
                _ => {}
            }
        }
        if std::fs::symlink_metadata(&clean).is_err() {
            return Err(EngineError::Source {
                path: clean.display().to_string(),
                reason: "does not exist or cannot be accessed".into(),
            });
        }
        out.push(clean);
    }
    out.sort();
    out.dedup();
    let all = out.clone();
    out.retain(|p| !all.iter().any(|q| q != p && p.starts_with(q)));
    Ok(out)
}

/// The directories between `/` and the sources: the root tree mirrors absolute paths.
#[derive(Debug, Default)]
pub struct PrefixTree {
    pub children: BTreeMap<Vec<u8>, PrefixTree>,
    pub is_source: bool,
}

impl PrefixTree {
    pub fn build(sources: &[PathBuf]) -> Self {
        let mut root = Self::default();
        for s in sources {
            let mut node = &mut root;
            for c in s.components() {
                if let Component::Normal(n) = c {
                    node = node.children.entry(n.as_bytes().to_vec()).or_default();
                }
            }
            node.is_source = true;
        }
        root
    }
}

/// Counts files and bytes to back up, for the progress ETA. Runs beside the walk; stops early
/// when `stop` fires.
pub fn scan_totals(
    sources: &[PathBuf],
    excludes: &Excludes,
    progress: &Progress,
    stop: &CancellationToken,
) {
    let mut stack = sources.to_vec();
    let (mut files, mut bytes) = (0u64, 0u64);
    while let Some(p) = stack.pop() {
        if stop.is_cancelled() {
            return;
        }
        let name = p
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default();
        if excludes.excludes(&p, &name) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else {
            files += 1;
            if meta.is_file() {
                bytes += meta.len();
            }
        }
    }
    progress.set_totals(files, bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_as_a_source_marks_the_root_itself() {
        // Regression: backing up `/` must not produce an empty tree.
        let tree = PrefixTree::build(&[PathBuf::from("/")]);
        assert!(tree.is_source);
        assert!(tree.children.is_empty());
    }

    #[test]
    fn nested_sources_are_merged_into_their_ancestor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inner = dir.path().join("a/b");
        std::fs::create_dir_all(&inner).expect("mkdir");
        let got = normalize_sources(&[inner.clone(), dir.path().join("a"), inner.join("..")])
            .expect("normalize");
        assert_eq!(got, vec![dir.path().join("a")]);
        assert!(normalize_sources(&[dir.path().join("missing")]).is_err());
    }
}
