//! Runs a parsed command line; one file per command group.

pub mod history;
pub mod jobs;
pub mod queue;
pub mod repo;
pub mod results;
pub mod snapshots;
pub mod source;
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
    let job = jobs::prepare(&cli.command)?;
    let mut client = Client::connect(&socket).await?;
    if let Some(job) = job {
        return jobs::run(&mut client, job, out).await;
    }
    match &cli.command {
        Command::System(cmd) => system::run(&mut client, cmd, out).await,
        Command::Repo(cmd) => repo::run(&mut client, cmd, out).await,
        Command::Snapshots(a) => snapshots::run(&mut client, a, out).await,
        Command::Queue(cmd) => queue::run(&mut client, cmd, out).await,
        Command::Events(a) => queue::events(&mut client, a, out).await,
        Command::Source(cmd) => source::run(&mut client, cmd, out).await,
        // Submitted above.
        Command::Backup(_) | Command::Restore(_) | Command::Forget(_) => Ok(ExitCode::Ok),
    }
}
