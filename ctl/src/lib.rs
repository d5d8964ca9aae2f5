//! backupctl: the command-line client of backupd. `main.rs` only calls [`run`].
//!
//! One typed helper per request lives in `client`; `commands/<group>.rs` mirror backupd's
//! command groups; `dashboard` is the full-screen live view;
//! `output` prints tables, `json` defines the `--json` interface; `exit` owns the exit codes.

pub mod cli;
pub mod client;
pub mod commands;
pub mod dashboard;
pub mod exit;
pub mod json;
pub mod output;
pub mod password;
pub mod progress;

use clap::Parser;
use exit::ExitCode;

/// Parses the command line, runs the command, returns the process exit code.
pub fn run() -> i32 {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::Ok
                }
                _ => ExitCode::Usage,
            };
            let _ = e.print();
            return code as i32;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("backupctl: cannot start the async runtime: {e}");
            return ExitCode::Error as i32;
        }
    };
    let out = output::Output::new(cli.json);
    let code = match runtime.block_on(commands::run(&cli, &out)) {
        Ok(code) => code,
        Err(e) => out.error(&e),
    };
    code as i32
}
