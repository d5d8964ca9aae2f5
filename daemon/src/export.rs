//! `system export-state` / `import-state`: the repository registry and the sources as a portable,
//! versioned JSON document (docs/FORMAT.md, "State export"), so that a lost or moved state
//! database can be rebuilt. No secrets: a repository is exported with the *path* of its key file
//! (or its password command), not the passphrase. Job history is not exported.
//!
//! Import merges: an entry whose name is already registered is skipped, never overwritten. A
//! document of another format or an unknown version is refused before anything changes.
//!
//! The document types here are the file format; they are separate from the sled records and the
//! wire types, and change only with a new [`VERSION`].

use crate::error::Error;
use crate::repo::registry::{Registry, RepoEntry};
use crate::watch::Sources;
use backupd_common::protocol::{ImportItem, ImportReport, SourceSpec};
use serde::{Deserialize, Serialize};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const FORMAT: &str = "backupd-state";
/// The only version this backupd writes and reads.
pub const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("not a backupd state export: {0}")]
    Parse(String),
    #[error("not a backupd state export: format is {0:?}, expected \"backupd-state\"")]
    Format(String),
    #[error(
        "state export version {found} is not known to this backupd (it reads version {VERSION}); \
         import it with the backupd that wrote it or a newer one"
    )]
    Version { found: u64 },
}

/// Only `format` and `version`, read first so that a newer document is refused by its version
/// rather than by whatever field it added.
#[derive(Deserialize)]
struct Header {
    format: String,
    version: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub format: String,
    pub version: u32,
    /// RFC 3339, when it was written.
    pub exported_at: String,
    /// The backupd that wrote it.
    pub daemon_version: String,
    pub repositories: Vec<Repository>,
    pub sources: Vec<Source>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repository {
    pub name: String,
    pub path: String,
    /// Where the passphrase is kept; `null` with `password_command`.
    pub key_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_command: Option<String>,
    pub is_default: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub name: String,
    pub path: String,
    /// `null`: the default repository.
    pub repo: Option<String>,
    pub excludes: Vec<String>,
    pub watch: bool,
    pub debounce_ms: u64,
    pub max_delay_ms: u64,
    pub rescan_every_ms: u64,
    /// Schedule, retention and RPO, as the state database stores them; absent in documents
    /// written before schedules existed (no schedule, default retention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<crate::state::records::source::PolicyRecord>,
}

/// Parses and checks a document: format, then version, then the fields.
pub fn parse(text: &str) -> Result<Document, ExportError> {
    let header: Header =
        serde_json::from_str(text).map_err(|e| ExportError::Parse(e.to_string()))?;
    if header.format != FORMAT {
        return Err(ExportError::Format(header.format));
    }
    if header.version != u64::from(VERSION) {
        return Err(ExportError::Version {
            found: header.version,
        });
    }
    serde_json::from_str(text).map_err(|e| ExportError::Parse(e.to_string()))
}

fn path_text(bytes: &[u8]) -> Option<String> {
    std::str::from_utf8(bytes).ok().map(str::to_owned)
}

/// The document for what is registered now. Paths that are not UTF-8 cannot be represented in
/// JSON strings; such entries are left out and logged.
pub fn build(repos: &[RepoEntry], sources: &[SourceSpec]) -> Document {
    let mut doc = Document {
        format: FORMAT.to_owned(),
        version: VERSION,
        exported_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        daemon_version: backupd_common::VERSION.to_owned(),
        repositories: Vec::new(),
        sources: Vec::new(),
    };
    for r in repos {
        let (Some(path), Some(key)) = (
            r.location.as_text(),
            path_text(r.key_file.as_os_str().as_bytes()),
        ) else {
            tracing::warn!(name = %r.name, "repository left out of the export: its path is not UTF-8");
            continue;
        };
        doc.repositories.push(Repository {
            name: r.name.clone(),
            path,
            key_file: r.password_command.is_none().then_some(key),
            password_command: r.password_command.clone(),
            is_default: r.is_default,
        });
    }
    for s in sources {
        let Some(path) = path_text(&s.path) else {
            tracing::warn!(source = %s.name, "source left out of the export: its path is not UTF-8");
            continue;
        };
        doc.sources.push(Source {
            name: s.name.clone(),
            path,
            repo: s.repo.clone(),
            excludes: s.excludes.clone(),
            watch: s.watch,
            debounce_ms: s.debounce.as_millis() as u64,
            max_delay_ms: s.max_delay.as_millis() as u64,
            rescan_every_ms: s.rescan_every.as_millis() as u64,
            policy: Some((&s.policy).into()),
        });
    }
    doc
}

/// `system export-state`: the document as pretty JSON.
pub async fn export(repos: &Arc<Registry>, sources: &Sources) -> Result<String, Error> {
    let repos = repos.clone();
    let entries = tokio::task::spawn_blocking(move || repos.list())
        .await
        .map_err(|source| Error::TaskFailed {
            task: "the export task".into(),
            source,
        })??;
    // Persisted sources only: `--watch` ones belong to one run.
    let doc = build(&entries, &sources.persisted());
    serde_json::to_string_pretty(&doc).map_err(|e| Error::Internal(e.to_string()))
}

fn item(kind: &str, name: &str, reason: Option<String>) -> ImportItem {
    ImportItem {
        kind: kind.to_owned(),
        name: name.to_owned(),
        reason,
    }
}

/// `system import-state`: merges a document, repositories first (sources refer to them).
pub async fn import(
    repos: &Arc<Registry>,
    sources: &Sources,
    text: &str,
) -> Result<ImportReport, Error> {
    let doc = parse(text)?;
    let mut report = ImportReport::default();
    let repos = repos.clone();
    let entries: Vec<RepoEntry> = doc
        .repositories
        .iter()
        .map(|r| RepoEntry {
            name: r.name.clone(),
            location: crate::repo::Location::local(&r.path),
            key_file: r.key_file.as_deref().map(PathBuf::from).unwrap_or_default(),
            is_default: r.is_default,
            password_command: r.password_command.clone(),
        })
        .collect();
    let results = tokio::task::spawn_blocking(move || {
        let results: Vec<_> = entries
            .into_iter()
            .map(|e| {
                let name = e.name.clone();
                (name, repos.import(e))
            })
            .collect();
        repos.alert_all_missing();
        results
    })
    .await
    .map_err(|source| Error::TaskFailed {
        task: "the import task".into(),
        source,
    })?;
    for (name, result) in results {
        match result {
            Ok(None) => report.added.push(item("repository", &name, None)),
            Ok(Some(caveat)) => report.added.push(item("repository", &name, Some(caveat))),
            Err(e) => report
                .skipped
                .push(item("repository", &name, Some(e.to_string()))),
        }
    }
    for s in doc.sources {
        let spec = SourceSpec {
            name: s.name.clone(),
            path: OsStr::new(&s.path).as_bytes().to_vec(),
            repo: s.repo,
            excludes: s.excludes,
            watch: s.watch,
            debounce: Duration::from_millis(s.debounce_ms),
            max_delay: Duration::from_millis(s.max_delay_ms),
            rescan_every: Duration::from_millis(s.rescan_every_ms),
            policy: s.policy.map(Into::into).unwrap_or_default(),
        };
        match sources.add(spec, false).await {
            Ok(_) => report.added.push(item("source", &s.name, None)),
            Err(e) => report
                .skipped
                .push(item("source", &s.name, Some(e.to_string()))),
        }
    }
    tracing::info!(
        added = report.added.len(),
        skipped = report.skipped.len(),
        "state imported"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Document {
        build(
            &[RepoEntry {
                name: "offsite".into(),
                location: crate::repo::Location::local("/srv/r"),
                key_file: "/etc/k".into(),
                is_default: true,
                password_command: None,
            }],
            &[SourceSpec {
                name: "home".into(),
                path: b"/home".to_vec(),
                repo: Some("offsite".into()),
                excludes: vec!["*.tmp".into()],
                watch: true,
                debounce: Duration::from_secs(2),
                max_delay: Duration::from_secs(60),
                policy: Default::default(),
                rescan_every: Duration::from_secs(86_400),
            }],
        )
    }

    #[test]
    fn a_document_round_trips() {
        let doc = sample();
        let text = serde_json::to_string_pretty(&doc).expect("json");
        assert_eq!(parse(&text).expect("parses"), doc);
        assert!(text.contains("\"key_file\": \"/etc/k\""), "{text}");
        assert!(text.contains("\"debounce_ms\": 2000"), "{text}");
    }

    #[test]
    fn unknown_versions_and_formats_are_refused() {
        let mut v = serde_json::to_value(sample()).expect("value");
        v["version"] = 2.into();
        v["new_field_of_v2"] = true.into();
        let err = parse(&v.to_string()).expect_err("v2");
        assert!(
            matches!(err, ExportError::Version { found: 2 }),
            "refused by its version, not its new field: {err}"
        );
        v["format"] = "something-else".into();
        assert!(matches!(parse(&v.to_string()), Err(ExportError::Format(_))));
        assert!(matches!(parse("not json"), Err(ExportError::Parse(_))));
    }
}
