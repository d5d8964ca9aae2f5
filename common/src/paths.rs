//! Default locations of the config file, state directory and socket in both run modes, shared so
//! that backupctl finds the socket backupd listens on.

use crate::protocol::RunMode;
use std::path::PathBuf;

/// Where things live when neither flags nor the config file say otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultPaths {
    pub mode: RunMode,
    pub config_file: PathBuf,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
}

pub const SYSTEM_CONFIG: &str = "/etc/backupd/config.toml";
pub const SYSTEM_STATE: &str = "/var/lib/backupd";
pub const SYSTEM_SOCKET: &str = "/run/backupd/backupd.sock";

/// Root runs in system mode; everyone else in user mode.
pub fn current_mode() -> RunMode {
    if nix::unistd::geteuid().is_root() {
        RunMode::System
    } else {
        RunMode::User
    }
}

impl DefaultPaths {
    pub fn for_mode(mode: RunMode) -> Self {
        match mode {
            RunMode::System => Self::system(),
            RunMode::User => Self::user(),
        }
    }

    pub fn system() -> Self {
        Self {
            mode: RunMode::System,
            config_file: SYSTEM_CONFIG.into(),
            state_dir: SYSTEM_STATE.into(),
            socket: SYSTEM_SOCKET.into(),
        }
    }

    /// XDG base directories, with the usual fallbacks under `$HOME`. Without
    /// `$XDG_RUNTIME_DIR` the socket goes to `/tmp/backupd-UID/`.
    pub fn user() -> Self {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let xdg = |var: &str, fallback: &str| -> PathBuf {
            match std::env::var_os(var).map(PathBuf::from) {
                Some(p) if p.is_absolute() => p,
                _ => home
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("/tmp"))
                    .join(fallback),
            }
        };
        let runtime = match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
            Some(p) if p.is_absolute() => p.join("backupd"),
            _ => PathBuf::from(format!("/tmp/backupd-{}", nix::unistd::getuid())),
        };
        Self {
            mode: RunMode::User,
            config_file: xdg("XDG_CONFIG_HOME", ".config").join("backupd/config.toml"),
            state_dir: xdg("XDG_STATE_HOME", ".local/state").join("backupd"),
            socket: runtime.join("backupd.sock"),
        }
    }
}

/// The socket backupctl talks to when no `--socket`/`BACKUPD_SOCKET` is given: root uses the
/// system socket; other users their own daemon's socket if it exists, else the system one.
pub fn client_socket() -> PathBuf {
    match current_mode() {
        RunMode::System => SYSTEM_SOCKET.into(),
        RunMode::User => {
            let own = DefaultPaths::user().socket;
            if own.exists() || !std::path::Path::new(SYSTEM_SOCKET).exists() {
                own
            } else {
                SYSTEM_SOCKET.into()
            }
        }
    }
}

/// The one rule by which backupd and backupctl write a Linux path (any bytes) as text, in
/// `--json` output, results and messages alike, so a path shown anywhere can be given back
/// (`backupctl --escaped-paths`) and means the same bytes:
///
/// * valid UTF-8 is written as it is, except `\`, written `\\`;
/// * every byte that is not part of valid UTF-8, and every byte of a control character
///   (U+0000–U+001F, U+007F–U+009F), is written `\xHH` (two lowercase hex digits).
///
/// Control characters are escaped so that a hostile file name cannot move a terminal's cursor
/// or forge a line of output. Nearly every path is printable UTF-8 without `\`, and reads the
/// same as in a shell.
pub fn escape_path(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else if c.is_control() {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod escape_tests {
    use super::escape_path;

    #[test]
    fn control_characters_backslashes_and_invalid_bytes_are_escaped_the_rest_kept() {
        assert_eq!(
            escape_path("/home/ann/café.txt".as_bytes()),
            "/home/ann/café.txt"
        );
        assert_eq!(escape_path(b"a\xffb"), "a\\xffb");
        assert_eq!(escape_path(b"line\nbreak\x1b[2J"), "line\\x0abreak\\x1b[2J");
        assert_eq!(escape_path("c1\u{85}".as_bytes()), "c1\\xc2\\x85");
        assert_eq!(escape_path(b"a\\b"), "a\\\\b");
    }
}
