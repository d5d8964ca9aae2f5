//! Runs a parsed command line; one file per command group.

pub mod system;

use crate::cli::{Cli, Command};
use crate::client::Client;
use crate::exit::ExitCode;
use crate::output::Output;
use backupd_common::client::ClientError;

pub async fn run(cli: &Cli, out: &Output) -> Result<ExitCode, ClientError> {
    let socket = cli
        .socket
        .clone()
        .unwrap_or_else(backupd_common::paths::client_socket);
    let mut client = Client::connect(&socket).await?;
    match &cli.command {
        Command::System(cmd) => system::run(&mut client, cmd, out).await,
    }
}
