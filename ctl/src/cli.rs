//! The command line, as clap derive types.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

const EXIT_CODES: &str = "\
Exit codes: 0 ok, 1 warning or partial result, 2 error, 3 daemon unreachable,
4 permission denied, 64 usage error.";

/// Command-line client of the backupd daemon.
#[derive(Debug, Parser)]
#[command(name = "backupctl", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Daemon socket. Default: /run/backupd/backupd.sock for root; for other users their own
    /// daemon's socket under $XDG_RUNTIME_DIR if present, else the system socket.
    #[arg(long, global = true, env = "BACKUPD_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print machine-readable JSON instead of human output.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon itself: health, identity, reload, shutdown.
    #[command(subcommand)]
    System(SystemCommand),
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show whether the daemon is up and how it runs.
    Health(HealthArgs),
    /// Show who the daemon thinks you are and your role.
    Whoami,
    /// Re-read the daemon's config file (like SIGHUP), reporting what changed.
    Reload,
    /// Stop the daemon gracefully.
    Shutdown,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Keep printing the health report every --interval.
    #[arg(long)]
    pub watch: bool,
    /// Interval for --watch, e.g. `2s`, `500ms`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s", requires = "watch")]
    pub interval: Duration,
    /// With --watch, stop after this many reports (0 = until interrupted).
    #[arg(long, default_value_t = 0, requires = "watch")]
    pub count: u32,
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
