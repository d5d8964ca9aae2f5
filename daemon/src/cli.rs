//! backupd's command line, as clap derive types. It lives in the library so that the packaging's
//! generator renders backupd(8) and the completions from the same definition `main.rs` parses.

use clap::{Parser, ValueHint};
use std::path::PathBuf;

/// The backupd daemon: continuous, deduplicated, encrypted backups.
///
/// Runs in the foreground. As root it uses /etc/backupd/config.toml, /var/lib/backupd and
/// /run/backupd/backupd.sock; as another user the XDG directories, with the socket in
/// $XDG_RUNTIME_DIR/backupd/, or /tmp/backupd-UID/ when XDG_RUNTIME_DIR is unset (su, runuser,
/// cron). Without a config file it runs on embedded defaults.
#[derive(Debug, Parser)]
#[command(name = "backupd", version, after_help = AFTER_HELP)]
pub struct Args {
    /// Config file (TOML). Default: the run mode's config file, if it exists. Under systemd
    /// set BACKUPD_CONFIG instead, so that ExecReload's --check-config reads the same file.
    #[arg(long, env = "BACKUPD_CONFIG", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub config: Option<PathBuf>,
    /// Socket path to listen on (ignored when systemd passes a socket). Its directory must be
    /// owned by you or root and writable by nobody else.
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub socket: Option<PathBuf>,
    /// Directory for the daemon's state database.
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub state_dir: Option<PathBuf>,
    /// Validate the config file and exit: 0 if valid, 2 if not.
    #[arg(long)]
    pub check_config: bool,
    /// Log level: trace, debug, info, warn, error or off; per target e.g. `backupd=trace,info`.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Back up this directory continuously into the default repository, for this run.
    /// Repeatable. (`backupctl source add` makes a source permanent.)
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub watch: Vec<PathBuf>,
}

const AFTER_HELP: &str = "\
A socket directory owned by another user, or writable by other users, is refused (exit 73):
whoever controls it could pose as this daemon. Remove it, or set XDG_RUNTIME_DIR or --socket.
Exit codes: 0 stopped cleanly, 1 error, 64 bad command line (also a --watch DIR that is not a
directory), 73 unusable state or socket directory, 78 invalid configuration;
--check-config: 0 valid, 2 invalid.";

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Args::command().debug_assert();
    }

    #[test]
    fn every_flag_has_help() {
        use clap::CommandFactory;
        let mut cmd = super::Args::command();
        cmd.build();
        let missing: Vec<_> = cmd
            .get_arguments()
            .filter(|a| a.get_help().is_none() && a.get_long_help().is_none())
            .map(|a| a.get_id().to_string())
            .collect();
        assert!(missing.is_empty(), "no help text: {missing:?}");
        assert_eq!(
            cmd.get_subcommands().count(),
            0,
            "walk subcommands too once they exist"
        );
    }
}
