//! `backupctl repo key rotate|list|remove`.

use super::Failure;
use crate::cli::KeyCommand;
use crate::client::Client;
use crate::json::repo_keys::{key_id, KeyListingView, KeyRemovalView, KeyRotationView};
use crate::output::{count, Output};
use backupd_common::protocol::KeyListing;

pub async fn run(client: &mut Client, cmd: &KeyCommand, out: &Output) -> Result<(), Failure> {
    match cmd {
        KeyCommand::Rotate { repo } => {
            let k = client.key_rotate(repo.clone()).await?;
            out.value(&KeyRotationView::from(&k), || {
                let mut t = format!(
                    "repository {}: data-key version {} is current (was {}); {} rewritten",
                    k.name,
                    k.version,
                    k.previous,
                    count(k.written.len() as u64, "key file")
                );
                if !k.kept_v1.is_empty() {
                    t.push_str(&format!(
                        "\n{} of other passphrases kept as version 1 ({}): add each passphrase \
                         again with `backupctl repo key add` and remove the old file with \
                         `backupctl repo key remove`",
                        count(k.kept_v1.len() as u64, "key file"),
                        k.kept_v1
                            .iter()
                            .map(|n| key_id(n))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                t
            });
        }
        KeyCommand::List { repo } => {
            let k = client.key_list(repo.clone()).await?;
            out.value(&KeyListingView::from(&k), || listing_text(&k));
        }
        KeyCommand::Remove { id, repo } => {
            let k = client.key_remove(repo.clone(), id.clone()).await?;
            out.value(&KeyRemovalView::from(&k), || {
                format!(
                    "repository {}: key file {} removed ({} left)",
                    k.name,
                    k.removed
                        .iter()
                        .map(|n| key_id(n))
                        .collect::<Vec<_>>()
                        .join(", "),
                    count(k.key_files, "key file")
                )
            });
        }
        // Handled in `commands::repo`.
        KeyCommand::Export { .. } | KeyCommand::Add { .. } | KeyCommand::Passwd { .. } => {}
        // Submitted as a job by `commands::jobs`.
        KeyCommand::Reencrypt(_) => {}
    }
    Ok(())
}

fn listing_text(k: &KeyListing) -> String {
    let mut lines = vec![format!(
        "repository {}: data-key version {} is current (key files of generation {})",
        k.name, k.current, k.generation
    )];
    lines.push(format!(
        "{:<8} {:<25} {:>8}  STATE",
        "VERSION", "CREATED", "PACKS"
    ));
    for v in &k.versions {
        let state = match (v.current, v.retired) {
            (true, _) => "current",
            (false, true) => "retired",
            (false, false) => "",
        };
        lines.push(format!(
            "{:<8} {:<25} {:>8}  {state}",
            v.version, v.created, v.packs
        ));
    }
    lines.push(String::new());
    lines.push(format!(
        "{:<13} {:<7} {:<25} {:<10} HOST",
        "KEY FILE", "FORMAT", "CREATED", "GENERATION"
    ));
    for f in &k.key_files {
        let generation = f.generation.map_or("-".to_owned(), |g| g.to_string());
        lines.push(format!(
            "{:<13} v{:<6} {:<25} {:<10} {}",
            key_id(&f.name),
            f.version,
            f.created,
            generation,
            f.host
        ));
    }
    if !k.unreadable_packs.is_empty() {
        lines.push(format!(
            "{} could not be read (run `backupctl repo check`)",
            count(k.unreadable_packs.len() as u64, "pack header")
        ));
    }
    lines.join("\n")
}
