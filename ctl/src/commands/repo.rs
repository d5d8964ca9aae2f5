//! `backupctl repo ...`

use super::{abs_bytes, Failure};
use crate::cli::{KeyCommand, RepoCommand};
use crate::client::Client;
use crate::exit::ExitCode;
use crate::output::Output;
use crate::password;
use backupd_common::protocol::RepoInfo;

fn repo_line(r: &RepoInfo) -> String {
    format!(
        "{}{}  {}  (id {}, {} snapshots, key file {})",
        r.name,
        if r.is_default { " (default)" } else { "" },
        r.path,
        r.id.get(..8).unwrap_or(&r.id),
        r.snapshots
            .map(|n| n.to_string())
            .unwrap_or_else(|| "?".into()),
        r.key_file
    )
}

pub async fn run(
    client: &mut Client,
    cmd: &RepoCommand,
    out: &Output,
) -> Result<ExitCode, Failure> {
    match cmd {
        RepoCommand::Init {
            name,
            path,
            password,
        } => {
            let secret = password::read(password).map_err(Failure::Local)?;
            let info = client
                .repo_init(name.clone(), abs_bytes(path)?, secret)
                .await?;
            out.value(&info, || format!("created {}", repo_line(&info)));
        }
        RepoCommand::Add {
            name,
            path,
            password,
        } => {
            let secret = password::read(password)
                .map_err(Failure::Local)?
                .ok_or_else(|| {
                    Failure::Usage(
                        "repo add needs the passphrase: --password-file, --password-fd, \
                         --password-env or --password-command"
                            .into(),
                    )
                })?;
            let info = client
                .repo_add(name.clone(), abs_bytes(path)?, secret)
                .await?;
            out.value(&info, || format!("added {}", repo_line(&info)));
        }
        RepoCommand::List => {
            let repos = client.repo_list().await?;
            out.value(&repos, || {
                if repos.is_empty() {
                    "no repositories".to_owned()
                } else {
                    repos.iter().map(repo_line).collect::<Vec<_>>().join("\n")
                }
            });
        }
        RepoCommand::Key(KeyCommand::Export { name }) => {
            let key = client.key_export(name.clone()).await?;
            out.value(&key, || {
                if key.encoding == "hex" {
                    format!(
                        "{} (hex: the passphrase is binary; decode before use)",
                        key.password
                    )
                } else {
                    key.password.clone()
                }
            });
        }
        // Submitted as jobs by `commands::jobs`.
        RepoCommand::Check(_) | RepoCommand::RebuildIndex(_) => {}
    }
    Ok(ExitCode::Ok)
}
