//! backupctl: the command-line client of backupd. `main.rs` only calls [`run`].
//!
//! One typed helper per request lives in `client`; `commands/<group>.rs` mirror backupd's
//! command groups; `dashboard` is the full-screen live view;
//! `output` prints tables, `json` defines the `--json` interface; `exit` owns the exit codes;
//! `completion` answers the shell's TAB (`COMPLETE=bash backupctl`).

pub mod cli;
pub mod client;
pub mod commands;
pub mod completion;
pub mod dashboard;
pub mod exit;
pub mod json;
pub mod output;
pub mod password;
pub mod progress;

use clap::{CommandFactory, Parser};
use exit::ExitCode;

/// Parses the command line, runs the command, returns the process exit code.
///
/// With `COMPLETE` set to a shell's name it only answers that shell's completion and exits:
/// the registration script, or the candidates for the line after `--` (the protocol is
/// written down in [`completion`]).
pub fn run() -> i32 {
    // `backupctl` from PATH, not the path this process was started by: the script a package
    // installs must keep working wherever the binary was when it was generated.
    clap_complete::CompleteEnv::with_factory(cli::Cli::command)
        .var(completion::ENV_VAR)
        .bin(completion::BIN)
        .completer(completion::BIN)
        .complete();
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
