//! Runs a parsed command line; one file per command group.

pub mod backup;
pub mod repo;
pub mod system;

use crate::cli::{Cli, Command};
use crate::client::Client;
use crate::exit::ExitCode;
use crate::output::Output;
use backupd_common::client::ClientError;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    Client(ClientError),
    /// A bad command line found before asking the daemon (exit code 64).
    Usage(String),
    /// A local failure before asking the daemon, e.g. an unreadable password file (exit code 2).
    Local(String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Self::Client(e)
    }
}

/// Absolute path bytes: relative paths are resolved against the caller's working directory,
/// because the daemon has its own.
pub fn abs_bytes(path: &Path) -> Result<Vec<u8>, Failure> {
    let abs = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map_err(|e| Failure::Local(format!("cannot resolve {}: {e}", path.display())))?
            .join(path)
    };
    Ok(abs.as_os_str().as_bytes().to_vec())
}

pub async fn run(cli: &Cli, out: &Output) -> Result<ExitCode, Failure> {
    let socket = cli
        .socket
        .clone()
        .unwrap_or_else(backupd_common::paths::client_socket);
    // Local checks first: no daemon round trip for a bad command line.
    let prepared = backup::prepare(&cli.command)?;
    let mut client = Client::connect(&socket).await?;
    match &cli.command {
        Command::System(cmd) => Ok(system::run(&mut client, cmd, out).await?),
        Command::Repo(cmd) => repo::run(&mut client, cmd, out).await,
        Command::Backup(_) | Command::Restore(_) | Command::Snapshots(_) | Command::Forget(_) => {
            backup::run(&mut client, &cli.command, prepared, out).await
        }
    }
}
