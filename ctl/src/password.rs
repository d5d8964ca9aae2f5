//! Reads a repository passphrase from a file, a file descriptor, an environment variable or a
//! command: never from argv, where every user could see it in `ps`.

use crate::cli::PasswordArgs;
use backupd_common::protocol::Secret;
use std::io::Read;

/// The passphrase, or `None` when no source was given. Only the first line counts.
pub fn read(args: &PasswordArgs) -> Result<Option<Secret>, String> {
    let sources = [
        args.password_file.is_some(),
        args.password_fd.is_some(),
        args.password_env.is_some(),
        args.password_command.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() > 1 {
        return Err(
            "give only one of --password-file, --password-fd, --password-env, --password-command"
                .into(),
        );
    }
    let raw = if let Some(path) = &args.password_file {
        std::fs::read(path)
            .map_err(|e| format!("cannot read password file {}: {e}", path.display()))?
    } else if let Some(fd) = args.password_fd {
        // /proc/self/fd/N opens the inherited descriptor without unsafe code.
        let mut buf = Vec::new();
        std::fs::File::open(format!("/proc/self/fd/{fd}"))
            .and_then(|mut f| f.read_to_end(&mut buf))
            .map_err(|e| format!("cannot read password from fd {fd}: {e}"))?;
        buf
    } else if let Some(var) = &args.password_env {
        std::env::var_os(var)
            .ok_or_else(|| format!("environment variable {var} is not set"))?
            .into_encoded_bytes()
    } else if let Some(cmd) = &args.password_command {
        let out = std::process::Command::new("sh")
            .args(["-c", cmd])
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run password command: {e}"))?;
        if !out.status.success() {
            return Err(format!("password command failed ({})", out.status));
        }
        out.stdout
    } else {
        return Ok(None);
    };
    let line: Vec<u8> = raw
        .split(|b| *b == b'\n')
        .next()
        .unwrap_or_default()
        .to_vec();
    let line = line.strip_suffix(b"\r").map(<[u8]>::to_vec).unwrap_or(line);
    if line.is_empty() {
        return Err(
            "the passphrase read from the given source is empty (the first line counts)".into(),
        );
    }
    Ok(Some(Secret(line)))
}
