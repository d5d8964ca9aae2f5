//! `backupctl repo ...`

use super::{abs_bytes, Failure};
use crate::cli::{KeyCommand, RepoCommand};
use crate::client::Client;
use crate::exit::ExitCode;
use crate::output::Output;
use crate::password;
use crate::progress::Bar;
use backupd_common::protocol::{CheckResult, RepoInfo};

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
        RepoCommand::RebuildIndex { repo, wait } => {
            let mut bar = Bar::new(*wait);
            let result = client.rebuild_index(repo.clone(), |p| bar.update(&p)).await;
            bar.finish();
            let r = result?;
            out.value(&r, || {
                let mut text = format!(
                    "index rebuilt: {} packs, {} blobs; {} old index files replaced",
                    r.packs, r.blobs, r.old_index_files
                );
                for (pack, why) in &r.unreadable {
                    text.push_str(&format!("\nleft out pack {pack}: {why}"));
                }
                text
            });
            if !r.unreadable.is_empty() {
                return Ok(ExitCode::Warning);
            }
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
        RepoCommand::Check {
            repo,
            read_data,
            read_data_subset,
            wait,
        } => {
            let pct = if *read_data {
                100
            } else {
                read_data_subset.unwrap_or(0)
            };
            let mut bar = Bar::new(*wait);
            let result = client.check(repo.clone(), pct, |p| bar.update(&p)).await;
            bar.finish();
            let report = result?;
            out.value(&report, || check_text(&report));
            if !report.problems.is_empty() {
                return Ok(ExitCode::Warning);
            }
        }
    }
    Ok(ExitCode::Ok)
}

fn check_text(r: &CheckResult) -> String {
    let mut text = format!(
        "{} snapshots, {} trees, {} blobs in {} packs; {} packs read",
        r.snapshots, r.trees, r.blobs, r.packs, r.packs_read
    );
    for note in &r.notes {
        text.push_str(&format!("\nnote: {note}"));
    }
    if r.problems.is_empty() {
        text.push_str("\nno problems found");
    } else {
        text.push_str(&format!(
            "\n{} problems in {} damaged packs:",
            r.problems.len(),
            r.damaged_packs.len()
        ));
        for p in &r.problems {
            text.push_str(&format!(
                "\n  pack {} blob {}: {}",
                p.pack
                    .as_deref()
                    .map(|s| &s[..s.len().min(12)])
                    .unwrap_or("-"),
                p.blob
                    .as_deref()
                    .map(|s| &s[..s.len().min(12)])
                    .unwrap_or("-"),
                p.message
            ));
            if !p.snapshots.is_empty() {
                text.push_str(&format!("\n    snapshots: {}", p.snapshots.join(", ")));
            }
            for path in p.paths.iter().take(10) {
                text.push_str(&format!("\n    {path}"));
            }
            if p.paths.len() > 10 {
                text.push_str(&format!("\n    ... and {} more paths", p.paths.len() - 10));
            }
        }
    }
    text
}
