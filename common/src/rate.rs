//! A transfer rate limit such as `20MiB/s` (`--bwlimit`, `[sync] bwlimit`). Sizes are read by
//! the `bytesize` crate: `k`/`KB` are 1000, `KiB` is 1024; a bare number is bytes. The `/s` is
//! optional. `off` (or `0`) is no limit.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Bytes per second, never zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(u64);

/// Below this a limit is almost certainly a typo (`--bwlimit 10` meaning 10 MB/s).
pub const MIN_RATE: u64 = 1024;

#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a rate: {reason} (examples: 20MiB/s, 500KB, off)")]
pub struct RateError {
    pub text: String,
    pub reason: String,
}

impl Rate {
    pub fn bytes_per_sec(self) -> u64 {
        self.0
    }

    pub fn from_bytes_per_sec(n: u64) -> Option<Rate> {
        (n >= MIN_RATE).then_some(Rate(n))
    }

    /// `off`/`0` → `None`; anything else a rate of at least [`MIN_RATE`].
    pub fn parse_limit(text: &str) -> Result<Option<Rate>, RateError> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("off") || t == "0" {
            return Ok(None);
        }
        t.parse().map(Some)
    }
}

impl FromStr for Rate {
    type Err = RateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| RateError {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let t = text.trim();
        let t = t
            .strip_suffix("/s")
            .or_else(|| t.strip_suffix("/S"))
            .unwrap_or(t)
            .trim();
        let size: bytesize::ByteSize = t.parse().map_err(|e: String| err(&e))?;
        Rate::from_bytes_per_sec(size.as_u64())
            .ok_or_else(|| err("below the smallest limit, 1KiB/s"))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
        for (unit, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}/s", self.0 / size);
            }
        }
        write!(f, "{}B/s", self.0)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// For config fields: a rate or `off`.
pub mod limit {
    use super::Rate;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Rate>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(r) => s.collect_str(r),
            None => s.serialize_str("off"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Rate>, D::Error> {
        let text = String::deserialize(d)?;
        Rate::parse_limit(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_usual_spellings() {
        assert_eq!(
            "20MiB/s".parse::<Rate>().expect("parses").bytes_per_sec(),
            20 << 20
        );
        assert_eq!(
            "20 MiB".parse::<Rate>().expect("parses").bytes_per_sec(),
            20 << 20
        );
        assert_eq!(
            "500KB/s".parse::<Rate>().expect("parses").bytes_per_sec(),
            500_000
        );
        assert_eq!(
            "1.5GiB".parse::<Rate>().expect("parses").bytes_per_sec(),
            3 << 29
        );
        assert_eq!(Rate::parse_limit("off").expect("parses"), None);
        assert_eq!(Rate::parse_limit(" 0 ").expect("parses"), None);
    }

    #[test]
    fn refuses_nonsense_and_tiny_limits() {
        for bad in ["fast", "-1MiB", "10", "", "MiB/s"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?} accepted");
        }
        let e = "fast".parse::<Rate>().expect_err("refused").to_string();
        assert!(e.contains("\"fast\"") && e.contains("20MiB/s"), "{e}");
    }

    #[test]
    fn displays_what_parses_back() {
        for text in ["20MiB/s", "3GiB/s", "1536B/s", "7KiB/s"] {
            let r: Rate = text.parse().expect("parses");
            assert_eq!(r.to_string(), text);
            assert_eq!(r.to_string().parse::<Rate>().expect("parses"), r);
        }
    }
}
