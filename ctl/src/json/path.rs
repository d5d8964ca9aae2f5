//! The one rule by which `--json` writes a Linux path as a JSON string
//! ([`backupd_common::paths::escape_path`], where the rule is written down), and by which
//! `--escaped-paths` reads it back from the command line: `\\` is one `\`, `\xHH` one byte;
//! any other use of `\` is an error.

/// Writes `bytes` by the one rule.
pub use backupd_common::paths::escape_path as escape;

/// Why an escaped path does not read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?}: bad escape at byte {at}: with --escaped-paths a `\\` must start `\\\\` (a \
     backslash) or `\\xHH` (one byte in hex), as --json writes paths"
)]
pub struct EscapeError {
    pub text: String,
    pub at: usize,
}

/// Reads a path written by [`escape`] (or the daemon, which writes paths by the same rule).
pub fn unescape(text: &str) -> Result<Vec<u8>, EscapeError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let fail = || EscapeError {
            text: text.to_owned(),
            at: i,
        };
        match bytes.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let hex = bytes.get(i + 2..i + 4).ok_or_else(fail)?;
                let hex = std::str::from_utf8(hex).map_err(|_| fail())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| fail())?);
                i += 4;
            }
            _ => return Err(fail()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_paths_are_written_as_they_are() {
        assert_eq!(escape(b"/home/ann/caf\xc3\xa9.txt"), "/home/ann/café.txt");
        assert_eq!(
            unescape("/home/ann/café.txt").expect("reads back"),
            b"/home/ann/caf\xc3\xa9.txt"
        );
    }

    #[test]
    fn non_utf8_bytes_and_backslashes_round_trip() {
        let raw: &[u8] = b"/data/caf\xe9\\x41/\xff\xfe\\";
        let text = escape(raw);
        assert_eq!(text, "/data/caf\\xe9\\\\x41/\\xff\\xfe\\\\");
        assert_eq!(unescape(&text).expect("reads back"), raw);
    }

    #[test]
    fn every_byte_round_trips() {
        let raw: Vec<u8> = (1..=255u8).chain([0xc3, 0xa9, 0xe2, 0x82]).collect();
        assert_eq!(unescape(&escape(&raw)).expect("reads back"), raw);
    }

    #[test]
    fn stray_backslashes_are_refused_with_their_position() {
        assert_eq!(unescape("/a\\b").expect_err("refused").at, 2);
        assert_eq!(unescape("/a\\x4").expect_err("refused").at, 2);
        assert_eq!(unescape("/a\\xzz").expect_err("refused").at, 2);
        assert!(unescape("/a\\").is_err());
    }
}
