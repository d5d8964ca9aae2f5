//! `backupctl repo ...`

use super::{Failure, Paths};
use crate::cli::{KeyCommand, RepoCommand};
use crate::client::Client;
use crate::exit::ExitCode;
use crate::json::repo::{KeyView, RepoView};
use crate::output::Output;
use crate::password;
use backupd_common::protocol::RepoInfo;

fn repo_line(r: &RepoInfo) -> String {
    format!(
        "{}{}  {}  (id {}, {}, key file {})",
        r.name,
        if r.is_default { " (default)" } else { "" },
        r.path,
        r.id.get(..8).unwrap_or(&r.id),
        r.snapshots
            .map(|n| crate::output::count(n, "snapshot"))
            .unwrap_or_else(|| "? snapshots".into()),
        r.key_file
    )
}

/// What `repo init` tells the user about the repository's key.
fn key_warning(info: &RepoInfo, passphrase_given: bool) -> String {
    if passphrase_given {
        format!(
            "note: the repository opens only with the passphrase you gave; backupd keeps a copy \
             in {} on this machine. Keep the passphrase somewhere else as well: without it the \
             backups cannot be read.",
            info.key_file
        )
    } else {
        format!(
            "IMPORTANT: the repository's passphrase was generated and exists only in {} on this \
             machine. Export it now with `backupctl repo key export {}` and keep it somewhere \
             else (a password manager, another machine): if this machine is lost, the backups \
             cannot be read without it.",
            info.key_file, info.name
        )
    }
}

pub async fn run(
    client: &mut Client,
    cmd: &RepoCommand,
    out: &Output,
    paths: Paths,
) -> Result<ExitCode, Failure> {
    match cmd {
        RepoCommand::Init {
            name,
            path,
            password,
        } => {
            let secret = password::read(password).map_err(Failure::Local)?;
            let passphrase_given = secret.is_some();
            let info = client
                .repo_init(name.clone(), paths.abs(path)?, secret)
                .await?;
            out.value(&RepoView::from(&info), || {
                format!("created {}", repo_line(&info))
            });
            // The daemon's key file is the only copy of a generated passphrase; say so where
            // the person who ran the command sees it, not only in the daemon's log. On stderr,
            // so `--json` output stays one JSON value.
            eprintln!("{}", key_warning(&info, passphrase_given));
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
                .repo_add(name.clone(), paths.abs(path)?, secret)
                .await?;
            out.value(&RepoView::from(&info), || {
                format!("added {}", repo_line(&info))
            });
        }
        RepoCommand::List => {
            let repos = client.repo_list().await?;
            let view: Vec<RepoView> = repos.iter().map(RepoView::from).collect();
            out.value(&view, || {
                if repos.is_empty() {
                    "no repositories".to_owned()
                } else {
                    repos.iter().map(repo_line).collect::<Vec<_>>().join("\n")
                }
            });
        }
        RepoCommand::Key(KeyCommand::Export { name }) => {
            let key = client.key_export(name.clone()).await?;
            out.value(&KeyView::from(&key), || {
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
