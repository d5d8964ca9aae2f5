//! Starting the `attacker` test binary (`src/bin/attacker.rs`) as another uid.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The `attacker` test binary (`src/bin/attacker.rs`) as another uid; killed when dropped.
pub struct Attacker(Child);

impl Attacker {
    /// The attacker `exe` (the test's `env!("CARGO_BIN_EXE_attacker")`) with `args`, to run as
    /// `uid` (and the group of the same number, no supplementary groups).
    pub fn command(exe: &str, uid: u32, args: &[&str]) -> Command {
        let mut cmd = Command::new(exe);
        cmd.uid(uid).gid(uid).args(args);
        cmd
    }

    /// Starts the attacker as `uid`, exchanging each pair of paths in a loop, and waits until
    /// it runs.
    pub fn swap(exe: &str, uid: u32, pairs: &[(&Path, &Path)]) -> Self {
        let mut cmd = Self::command(exe, uid, &["swap"]);
        for (a, b) in pairs {
            cmd.arg(a).arg(b);
        }
        Self::started(cmd, b"racing")
    }

    /// Starts the attacker as `uid` as a fake daemon listening on `socket`, which notes in
    /// `log` how many bytes each client sent; returns once it listens.
    pub fn fake_daemon(exe: &str, uid: u32, socket: &Path, log: &Path) -> Self {
        let mut cmd = Self::command(exe, uid, &["listen"]);
        cmd.arg(socket).arg(log);
        Self::started(cmd, b"listening")
    }

    fn started(mut cmd: Command, banner: &[u8]) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn attacker");
        let mut line = vec![0u8; banner.len()];
        let started = child
            .stdout
            .as_mut()
            .map(|o| o.read_exact(&mut line).is_ok())
            .unwrap_or(false);
        assert!(started && line == banner, "attacker did not start");
        Self(child)
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
