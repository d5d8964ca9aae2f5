//! `backupctl system ...`

use crate::cli::SystemCommand;
use crate::client::Client;
use crate::exit::ExitCode;
use crate::output::{self, Output};
use backupd_common::client::ClientError;

pub async fn run(
    client: &mut Client,
    cmd: &SystemCommand,
    out: &Output,
) -> Result<ExitCode, ClientError> {
    match cmd {
        SystemCommand::Health(args) if args.watch => {
            client
                .watch_health(args.interval, args.count, |h| {
                    out.value(&h, || output::health_line(&h))
                })
                .await?;
        }
        SystemCommand::Health(_) => {
            let h = client.health().await?;
            out.value(&h, || output::health_table(&h));
        }
        SystemCommand::Whoami => {
            let who = client.whoami().await?;
            out.value(&who, || {
                format!("uid {} gid {} role {}", who.uid, who.gid, who.role.as_str())
            });
        }
        SystemCommand::Reload => {
            let report = client.reload().await?;
            out.value(&report, || output::reload_text(&report));
        }
        SystemCommand::Shutdown => {
            client.shutdown().await?;
            out.value(&serde_json::json!({"shutting_down": true}), || {
                "backupd is shutting down".to_owned()
            });
        }
    }
    Ok(ExitCode::Ok)
}
