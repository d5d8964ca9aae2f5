//! Shell completion scripts. backupctl's are the registration scripts of clap_complete's dynamic
//! completion: the shell calls `backupctl` back on every TAB (with `COMPLETE=<shell>` set), so
//! repository, source and snapshot names come from the running daemon. backupd has only flags:
//! its scripts are static.

use crate::ensure_dir;
use anyhow::Context as _;
use clap::CommandFactory as _;
use clap_complete::env::{Bash, EnvCompleter, Fish, Zsh};
use clap_complete::Shell;
use std::path::{Path, PathBuf};

/// File names as bash-completion, zsh's vendor-completions and fish's vendor_completions.d
/// look them up.
pub fn write_scripts(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = ensure_dir(dir)?;
    let mut written = Vec::new();
    let dynamic: [(&dyn EnvCompleter, String); 3] = [
        (&Bash, "backupctl".to_owned()),
        (&Zsh, "_backupctl".to_owned()),
        (&Fish, "backupctl.fish".to_owned()),
    ];
    for (shell, file) in dynamic {
        let mut script = Vec::new();
        shell.write_registration(
            "COMPLETE",
            "backupctl",
            "backupctl",
            "backupctl",
            &mut script,
        )?;
        written.push(write(dir, &file, script)?);
    }
    for (shell, file) in [
        (Shell::Bash, "backupd"),
        (Shell::Zsh, "_backupd"),
        (Shell::Fish, "backupd.fish"),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(
            shell,
            &mut backupd::cli::Args::command(),
            "backupd",
            &mut script,
        );
        written.push(write(dir, file, script)?);
    }
    Ok(written)
}

fn write(dir: &Path, file: &str, script: Vec<u8>) -> anyhow::Result<PathBuf> {
    let path = dir.join(file);
    std::fs::write(&path, script).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
