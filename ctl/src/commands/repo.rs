//! `backupctl repo ...`

use super::{Failure, Paths};
use crate::cli::{KeyCommand, RepoCommand, StoreArgs};
use crate::client::Client;
use crate::exit::ExitCode;
use crate::json::repo::{KeyChangeView, KeyView, RepoDetailsView, RepoView};
use crate::output::{count, Output};
use crate::password;
use crate::progress::bytes;
use backupd_common::protocol::{InitReplicaRequest, RepoDetails, RepoInfo, Secret};

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

fn short(id: &str) -> &str {
    super::results::short(id)
}

fn details_text(d: &RepoDetails) -> String {
    let ratio = super::stats::ratio;
    format!(
        "repository {}{} at {}\n  id {}, format version {}, created {}\n  chunker: FastCDC \
         min {} / avg {} / max {}\n  compression: {}\n  {}, {}, {}, {}, \
         {}\n  stored {} (pack files), original {} (plaintext of every \
         blob)\n  dedup ratio {} (file bytes of all snapshots / distinct data), compression \
         ratio {}",
        d.repo.name,
        if d.repo.is_default { " (default)" } else { "" },
        d.repo.path,
        d.repo.id,
        d.repo.format_version,
        d.created,
        bytes(d.chunk_min.into()),
        bytes(d.chunk_avg.into()),
        bytes(d.chunk_max.into()),
        d.compression,
        count(d.snapshots, "snapshot"),
        count(d.packs, "pack"),
        count(d.blobs, "blob"),
        count(d.index_files, "index file"),
        count(d.key_files, "key file"),
        bytes(d.stored_bytes),
        bytes(d.original_bytes),
        ratio(d.dedup_ratio),
        ratio(d.compression_ratio)
    )
}

/// The location to send, and the credentials file's text: an `s3://` URL carries the store
/// options as its query; a directory is made absolute and takes none.
fn location(
    path: &std::path::Path,
    store: &StoreArgs,
    paths: Paths,
) -> Result<(Vec<u8>, Option<Secret>), Failure> {
    let text = path.to_str().unwrap_or_default();
    if !text.starts_with("s3://") {
        let options = store.endpoint.is_some()
            || store.region.is_some()
            || store.allow_http
            || store.virtual_hosted
            || store.credentials_file.is_some();
        if options {
            return Err(Failure::Usage(
                "--endpoint, --region, --allow-http, --virtual-hosted and --credentials-file \
                 are for an s3:// location"
                    .into(),
            ));
        }
        return Ok((paths.abs(path)?, None));
    }
    // Percent-encodes what would end or split a query value.
    let encode = |v: &str| {
        v.chars()
            .map(|c| match c {
                '&' | '=' | '%' | '#' | '+' | ' ' => format!("%{:02X}", c as u32),
                c => c.to_string(),
            })
            .collect::<String>()
    };
    let mut options = Vec::new();
    if let Some(e) = &store.endpoint {
        options.push(format!("endpoint={}", encode(e)));
    }
    if let Some(r) = &store.region {
        options.push(format!("region={}", encode(r)));
    }
    if store.allow_http {
        options.push("allow-http=1".to_owned());
    }
    if store.virtual_hosted {
        options.push("virtual-hosted=1".to_owned());
    }
    let mut url = text.to_owned();
    if !options.is_empty() {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&options.join("&"));
    }
    let credentials = match &store.credentials_file {
        None => None,
        Some(file) => {
            use std::io::Read;
            let mut text = Vec::new();
            std::fs::File::open(file)
                .and_then(|f| f.take(64 * 1024 + 1).read_to_end(&mut text))
                .map_err(|e| {
                    Failure::Local(format!(
                        "cannot read the credentials file {}: {e}",
                        file.display()
                    ))
                })?;
            if text.len() > 64 * 1024 {
                return Err(Failure::Local(format!(
                    "the credentials file {} is larger than 64 KiB; it should hold a few keys",
                    file.display()
                )));
            }
            Some(Secret(text))
        }
    };
    Ok((url.into_bytes(), credentials))
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
            store,
            replica_of,
            own_data_key,
            password,
        } => {
            let secret = password::read(password).map_err(Failure::Local)?;
            let passphrase_given = secret.is_some();
            let (location, credentials) = location(path, store, paths)?;
            let info = match replica_of {
                Some(_) if credentials.is_some() => {
                    return Err(Failure::Usage(
                        "--credentials-file is not taken with --replica-of: a replica in an \
                         object store is reached with the daemon's AWS environment or \
                         ~/.aws/credentials"
                            .into(),
                    ))
                }
                Some(source) => {
                    client
                        .repo_init_replica(InitReplicaRequest {
                            name: name.clone(),
                            path: location,
                            password: secret,
                            source: source.clone(),
                            own_data_key: *own_data_key,
                        })
                        .await?
                }
                None => {
                    client
                        .repo_init(name.clone(), location, secret, credentials)
                        .await?
                }
            };
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
            store,
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
            let (location, credentials) = location(path, store, paths)?;
            let info = client
                .repo_add(name.clone(), location, secret, credentials)
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
        RepoCommand::Remove { name } => {
            let info = client.repo_remove(name.clone()).await?;
            out.value(&RepoView::from(&info), || {
                format!(
                    "removed the registration of {} at {}; its files were not touched and its \
                     passphrase stays in {} (`backupctl repo add --name {} --path {} \
                     --password-file {}` registers it again)",
                    info.name, info.path, info.key_file, info.name, info.path, info.key_file
                )
            });
        }
        RepoCommand::Info { name } => {
            let d = client.repo_info(name.clone()).await?;
            out.value(&RepoDetailsView::from(&d), || details_text(&d));
        }
        RepoCommand::Key(
            KeyCommand::Add { name, password } | KeyCommand::Passwd { name, password },
        ) => {
            let passwd = matches!(cmd, RepoCommand::Key(KeyCommand::Passwd { .. }));
            let secret = password::read(password)
                .map_err(Failure::Local)?
                .ok_or_else(|| {
                    Failure::Usage(format!(
                        "repo key {} needs the new passphrase: --password-file, --password-fd, \
                         --password-env or --password-command",
                        if passwd { "passwd" } else { "add" }
                    ))
                })?;
            let k = client.key_change(name.clone(), secret, passwd).await?;
            out.value(&KeyChangeView::from(&k), || {
                let mut t = format!(
                    "repository {}: key file {} added ({} now)",
                    k.name,
                    short(&k.added),
                    count(k.key_files, "key file")
                );
                if passwd {
                    t.push_str(&format!(
                        "; the old passphrase's key files removed ({}); the daemon now uses the \
                         new passphrase, kept in {}",
                        k.removed
                            .iter()
                            .map(|r| short(r))
                            .collect::<Vec<_>>()
                            .join(", "),
                        k.daemon_key_file.as_deref().unwrap_or("?")
                    ));
                }
                t
            });
        }
        RepoCommand::Key(
            k @ (KeyCommand::Rotate { .. } | KeyCommand::List { .. } | KeyCommand::Remove { .. }),
        ) => super::repo_keys::run(client, k, out).await?,
        RepoCommand::Replicate(r) => super::repo_replicate::run(client, r, out).await?,
        // Submitted as jobs by `commands::jobs`.
        RepoCommand::Check(_)
        | RepoCommand::RebuildIndex(_)
        | RepoCommand::Migrate(_)
        | RepoCommand::Prune(_)
        | RepoCommand::Compact(_)
        | RepoCommand::Key(KeyCommand::Reencrypt(_)) => {}
    }
    Ok(ExitCode::Ok)
}
