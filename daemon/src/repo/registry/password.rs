//! Where a registered repository's passphrase comes from: a key file (the daemon's own under
//! `<state dir>/keys/`, or one named by `key_file` in the config) or, for a declared repository,
//! a `password_command`. Either way only the first line counts, as for backupctl's
//! `--password-file`; backupctl never sends a passphrase with a newline, so the daemon's own key
//! files read the same as before.
//!
//! Blocking: reads a file or runs a command (bounded by [`COMMAND_TIMEOUT`]).

use super::{RegistryError, RepoEntry};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A password command that has not exited by then is killed: it would hold up every job of
/// its repository.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The passphrase of `entry`.
pub fn read(entry: &RepoEntry) -> Result<Vec<u8>, RegistryError> {
    let raw = match &entry.password_command {
        Some(cmd) => run(&entry.name, cmd)?,
        None => read_file(&entry.key_file)?,
    };
    let line = raw.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(RegistryError::Password {
            name: entry.name.clone(),
            reason: "the passphrase source gave an empty first line".to_owned(),
        });
    }
    Ok(line.to_vec())
}

pub fn read_file(path: &Path) -> Result<Vec<u8>, RegistryError> {
    std::fs::read(path).map_err(|source| RegistryError::KeyFile {
        action: "read",
        path: path.to_owned(),
        source,
    })
}

fn run(name: &str, cmd: &str) -> Result<Vec<u8>, RegistryError> {
    let failed = |reason: String| RegistryError::Password {
        name: name.to_owned(),
        reason,
    };
    let mut child = Command::new("sh")
        .args(["-c", cmd])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| failed(format!("cannot run password_command: {e}")))?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > COMMAND_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!(
                    "password_command did not finish within {COMMAND_TIMEOUT:?}"
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(failed(format!("waiting for password_command: {e}"))),
        }
    };
    if !status.success() {
        return Err(failed(format!("password_command failed ({status})")));
    }
    let mut out = Vec::new();
    // A passphrase is short: what the command wrote fits in the pipe, so reading after the
    // exit cannot block it.
    if let Some(mut stdout) = child.stdout.take() {
        stdout
            .read_to_end(&mut out)
            .map_err(|e| failed(format!("reading password_command output: {e}")))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key_file: &Path, command: Option<&str>) -> RepoEntry {
        RepoEntry {
            name: "r".into(),
            location: crate::repo::Location::local("/nonexistent"),
            key_file: key_file.to_owned(),
            is_default: false,
            password_command: command.map(str::to_owned),
        }
    }

    #[test]
    fn first_line_of_a_file_or_command_output_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("k");
        std::fs::write(&file, b"secret\r\nignored\n").expect("write");
        assert_eq!(read(&entry(&file, None)).expect("file"), b"secret");
        assert_eq!(
            read(&entry(Path::new(""), Some("printf 'from-cmd\\nmore'"))).expect("command"),
            b"from-cmd"
        );
    }

    #[test]
    fn failing_or_empty_sources_are_errors_naming_the_repository() {
        let err = read(&entry(Path::new(""), Some("exit 3"))).expect_err("fails");
        assert!(err.to_string().contains("\"r\""), "{err}");
        let err = read(&entry(Path::new(""), Some("true"))).expect_err("empty");
        assert!(err.to_string().contains("empty"), "{err}");
    }
}
