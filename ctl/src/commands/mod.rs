//! Runs a parsed command line; one file per command group.

pub mod analytics;
pub mod analytics_html;
pub mod analytics_report;
pub mod analytics_scan;
pub mod analytics_svg;
pub mod browse;
pub mod history;
pub mod jobs;
pub mod perf;
pub mod queue;
pub mod recovery;
pub mod recovery_drill;
pub mod recovery_objectives;
pub mod repo;
pub mod repo_keys;
pub mod repo_replicate;
pub mod results;
pub mod security_alerts;
pub mod security_audit;
pub mod security_files;
pub mod security_roles;
pub mod snapshots;
pub mod source;
pub mod stats;
pub mod sync;
pub mod system;

use crate::cli::{Cli, Command, SecurityCommand};
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
    /// The daemon refused a job's arguments at submission (an unknown snapshot or repository,
    /// a missing path, a bad glob): a usage error (exit code 64), nothing was queued.
    Refused(ClientError),
}

impl Failure {
    /// A failed submission: the daemon checks what it can before queueing, and a request it
    /// finds wrong (`InvalidArgument`, `NotFound`) is the command line's mistake.
    pub fn submit(e: ClientError) -> Self {
        use backupd_common::error::ErrorCode;
        match &e {
            ClientError::Remote(r)
                if matches!(r.code, ErrorCode::InvalidArgument | ErrorCode::NotFound) =>
            {
                Self::Refused(e)
            }
            _ => Self::Client(e),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Self::Client(e)
    }
}

/// How path arguments are read: as typed, or (`--escaped-paths`) in the form `--json` writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Paths {
    pub escaped: bool,
}

impl Paths {
    /// Absolute path bytes of a path argument: relative paths are resolved against the
    /// caller's working directory, because the daemon has its own.
    pub fn abs(self, path: &Path) -> Result<Vec<u8>, Failure> {
        let bytes = self.raw(path)?;
        if bytes.starts_with(b"/") {
            return Ok(bytes);
        }
        let cwd = std::env::current_dir()
            .map_err(|e| Failure::Local(format!("cannot resolve {}: {e}", path.display())))?;
        let mut abs = cwd.as_os_str().as_bytes().to_vec();
        if !abs.ends_with(b"/") {
            abs.push(b'/');
        }
        abs.extend_from_slice(&bytes);
        Ok(abs)
    }

    /// The bytes a path argument means, not resolved.
    pub fn raw(self, path: &Path) -> Result<Vec<u8>, Failure> {
        self.text(path.as_os_str().as_bytes())
    }

    /// `SNAPSHOT[:PATH]` (as `restore`, `ls` and `cat` take it): the snapshot spec and the
    /// absolute path inside it, if one is given.
    pub fn snapshot_path(self, arg: &str) -> Result<(String, Option<Vec<u8>>), Failure> {
        let (snapshot, path) = match arg.split_once(':') {
            Some((s, p)) if !p.is_empty() => (s.to_owned(), Some(self.text(p.as_bytes())?)),
            Some((s, _)) => (s.to_owned(), None),
            None => (arg.to_owned(), None),
        };
        if let Some(p) = &path {
            if !p.starts_with(b"/") {
                return Err(Failure::Usage(format!(
                    "{:?}: the path inside the snapshot must be absolute",
                    String::from_utf8_lossy(p)
                )));
            }
        }
        Ok((snapshot, path))
    }

    /// The bytes an argument's text means (e.g. the SUBPATH of `SNAPSHOT:SUBPATH`).
    pub fn text(self, arg: &[u8]) -> Result<Vec<u8>, Failure> {
        if !self.escaped {
            return Ok(arg.to_vec());
        }
        let text = std::str::from_utf8(arg).map_err(|_| {
            Failure::Usage(format!(
                "{:?}: with --escaped-paths a path is ASCII/UTF-8 text with \\xHH escapes",
                String::from_utf8_lossy(arg)
            ))
        })?;
        crate::json::path::unescape(text).map_err(|e| Failure::Usage(e.to_string()))
    }
}

pub async fn run(cli: &Cli, out: &Output) -> Result<ExitCode, Failure> {
    let socket = cli
        .socket
        .clone()
        .unwrap_or_else(backupd_common::paths::client_socket);
    let paths = Paths {
        escaped: cli.escaped_paths,
    };
    // The dashboard connects (and reconnects) on its own: an absent daemon is something it
    // shows, not a reason to fail.
    if let Command::Dashboard(args) = &cli.command {
        return crate::dashboard::run(cli, args, out).await;
    }
    // Local checks first: no daemon round trip for a bad command line.
    if let (Command::Cat(_), true) = (&cli.command, out.is_json()) {
        return Err(Failure::Usage(browse::CAT_NO_JSON.into()));
    }
    let job = jobs::prepare(&cli.command, paths)?;
    let scanned = analytics::prepare(&cli.command, out, paths).await?;
    let mut client = Client::connect(&socket, cli.socket_owner).await?;
    if let Some(job) = job {
        return jobs::run(&mut client, job, out).await;
    }
    match &cli.command {
        Command::System(cmd) => system::run(&mut client, cmd, out).await,
        Command::Repo(cmd) => repo::run(&mut client, cmd, out, paths).await,
        Command::Snapshots(a) => snapshots::run(&mut client, a, out, paths).await,
        Command::Ls(a) => browse::ls(&mut client, a, out, paths).await,
        Command::Find(a) => browse::find(&mut client, a, out, paths).await,
        Command::Diff(a) => browse::diff(&mut client, a, out, paths).await,
        Command::Cat(a) => browse::cat(&mut client, a, paths).await,
        Command::Stats(a) => stats::run(&mut client, a, out).await,
        Command::Queue(cmd) => queue::run(&mut client, cmd, out).await,
        Command::Events(a) => queue::events(&mut client, a, out).await,
        Command::Source(cmd) => source::run(&mut client, cmd, out, paths).await,
        Command::Perf(cmd) => perf::run(&mut client, cmd, out).await,
        Command::Analytics(cmd) => analytics::run(&mut client, cmd, scanned, out).await,
        Command::Sync(cmd) => sync::run(&mut client, cmd, out, paths).await,
        Command::Recovery(crate::cli::recovery::RecoveryCommand::Objectives) => {
            recovery_objectives::run(&mut client, out).await
        }
        Command::Recovery(cmd) => recovery::run(&mut client, cmd, out, paths).await,
        Command::Security(cmd) => match cmd {
            SecurityCommand::Grant(a) => security_roles::grant(&mut client, a, out).await,
            SecurityCommand::Revoke(a) => security_roles::revoke(&mut client, a, out).await,
            SecurityCommand::Bindings => security_roles::bindings(&mut client, out).await,
            SecurityCommand::Check(a) => security_roles::check(&mut client, a, out).await,
            SecurityCommand::Audit(a) => security_audit::run(&mut client, a, out).await,
            SecurityCommand::Alerts(a) => security_alerts::alerts(&mut client, a, out).await,
            SecurityCommand::Unlock(a) => security_alerts::unlock(&mut client, a, out).await,
            SecurityCommand::Compliance(a) => {
                security_alerts::compliance(&mut client, a, out).await
            }
            SecurityCommand::Report(a) => security_alerts::report(&mut client, a, out).await,
            SecurityCommand::Encrypt(a) => {
                security_files::run(&mut client, a, true, out, paths).await
            }
            SecurityCommand::Decrypt(a) => {
                security_files::run(&mut client, a, false, out, paths).await
            }
        },
        // Submitted (or shown) above.
        Command::Backup(_) | Command::Restore(_) | Command::Forget(_) | Command::Dashboard(_) => {
            Ok(ExitCode::Ok)
        }
    }
}
