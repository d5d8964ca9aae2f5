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
