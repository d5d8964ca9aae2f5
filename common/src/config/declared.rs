//! Repositories (`[[repository]]`) and sources (`[[source]]`) declared in the config file, so
//! that configuration management can rebuild what the state database holds. They take what
//! `backupctl repo add` and `backupctl source add` take; the daemon registers them at start and
//! on reload, and a declared entry wins over one of the same name in the state database.
//!
//! Keys in errors count tables from 1: `repository[2].key_file` is the second `[[repository]]`.

use super::hooks::HooksConfig;
use crate::protocol::{KeepRules, Retention, SourcePolicy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// Defaults of a source, shared with `backupctl source add` and `backupd --watch`.
pub const SOURCE_DEBOUNCE: Duration = Duration::from_secs(2);
pub const SOURCE_MAX_DELAY: Duration = Duration::from_secs(60);
pub const SOURCE_RESCAN: Duration = Duration::from_secs(86_400);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    /// The name jobs and sources use (`--repo NAME`).
    pub name: String,
    /// Absolute path of an existing repository (`backupctl repo init` creates one).
    pub path: PathBuf,
    /// File holding the passphrase; its first line counts, as for `--password-file`.
    #[serde(default, alias = "password_file")]
    pub key_file: Option<PathBuf>,
    /// Shell command printing the passphrase on its first output line, run by the daemon
    /// whenever it opens the repository.
    #[serde(default)]
    pub password_command: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The directory to back up continuously (absolute).
    pub path: PathBuf,
    /// The source's name; default: the directory's name, made valid (letters, digits, `.`,
    /// `_`, `-`).
    #[serde(default)]
    pub name: Option<String>,
    /// Repository name; default: the default repository.
    #[serde(default)]
    pub repo: Option<String>,
    /// Globs of paths to leave out, as for `backupctl backup --exclude`.
    #[serde(default)]
    pub excludes: Vec<String>,
    /// Watch the directory with inotify; `false`: only scan it every `rescan_every` (and on
    /// its schedule).
    #[serde(default = "yes")]
    pub watch: bool,
    /// Quiet time after the last change before a backup is queued.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(default = "debounce", with = "humantime_serde")]
    pub debounce: Duration,
    /// Longest a change waits for its backup under continuous churn.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(default = "max_delay", with = "humantime_serde")]
    pub max_delay: Duration,
    /// A full (metadata-only) scan this often, as a backstop for missed events.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(default = "rescan", with = "humantime_serde")]
    pub rescan_every: Duration,
    /// A calendar schedule for backups besides the watched changes (`daily 02:00`).
    #[serde(default)]
    pub schedule: Option<String>,
    /// A plain interval between scheduled backups.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::HumanDuration>")
    )]
    #[serde(default, with = "humantime_serde")]
    pub every: Option<Duration>,
    /// Scheduled runs start up to this much later (fixed per host, source and slot).
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::HumanDuration>")
    )]
    #[serde(default, with = "humantime_serde")]
    pub jitter: Option<Duration>,
    /// Keep the newest this many snapshots. The `keep_*` rules work as restic's `--keep-*`;
    /// none given: the default retention for sources.
    #[serde(default)]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of this many hours.
    #[serde(default)]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of this many days.
    #[serde(default)]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of this many weeks.
    #[serde(default)]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of this many months.
    #[serde(default)]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of this many years.
    #[serde(default)]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot younger than this.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::HumanDuration>")
    )]
    #[serde(default, with = "humantime_serde")]
    pub keep_within: Option<Duration>,
    /// Never forget the source's snapshots automatically.
    #[serde(default)]
    pub keep_all: bool,
    /// Retention runs at most this often; default `[maintenance] retention_every`.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::HumanDuration>")
    )]
    #[serde(default, with = "humantime_serde")]
    pub retention_every: Option<Duration>,
    /// Longest time without a successful snapshot before `system health` is degraded.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::HumanDuration>")
    )]
    #[serde(default, with = "humantime_serde")]
    pub rpo: Option<Duration>,
    /// Longest acceptable estimated restore time of the newest snapshot (default 4h).
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::HumanDuration>")
    )]
    #[serde(default, with = "humantime_serde")]
    pub rto: Option<Duration>,
    /// Commands run around this source's backups, inside the global `[hooks]`.
    #[serde(default)]
    pub hooks: HooksConfig,
}

fn yes() -> bool {
    true
}
fn debounce() -> Duration {
    SOURCE_DEBOUNCE
}
fn max_delay() -> Duration {
    SOURCE_MAX_DELAY
}
fn rescan() -> Duration {
    SOURCE_RESCAN
}

impl SourceConfig {
    /// The source's name: given, or derived from the path.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| name_for(&self.path))
    }

    /// Its schedule, retention and RPO as `source add` would set them.
    pub fn policy(&self) -> SourcePolicy {
        let keep = [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ];
        let retention = if self.keep_all {
            Retention::KeepAll
        } else if keep.iter().all(Option::is_none) && self.keep_within.is_none() {
            Retention::Default
        } else {
            Retention::Keep(KeepRules {
                last: self.keep_last.unwrap_or(0),
                hourly: self.keep_hourly.unwrap_or(0),
                daily: self.keep_daily.unwrap_or(0),
                weekly: self.keep_weekly.unwrap_or(0),
                monthly: self.keep_monthly.unwrap_or(0),
                yearly: self.keep_yearly.unwrap_or(0),
                within: self.keep_within,
            })
        };
        SourcePolicy {
            schedule: self.schedule.clone(),
            every: self.every,
            jitter: self.jitter.unwrap_or_default(),
            retention,
            retention_every: self.retention_every,
            rpo: self.rpo,
            rto: self.rto,
        }
    }
}

/// Names of repositories and sources: 1-64 letters, digits, `.`, `_` or `-`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A default source name for a path: its last component, made valid.
pub fn name_for(path: &std::path::Path) -> String {
    let base: String = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if base.is_empty() {
        "root".into()
    } else {
        base
    }
}

/// A problem with one key: (key, message).
pub type Problem = (String, String);

/// Checks the declared repositories: names, absolute paths, exactly one passphrase source,
/// no name twice.
pub fn validate_repositories(repos: &[RepositoryConfig]) -> Result<(), Problem> {
    let mut seen = BTreeSet::new();
    for (i, r) in repos.iter().enumerate() {
        let key = |field: &str| format!("repository[{}].{field}", i + 1);
        if !valid_name(&r.name) {
            return Err((
                key("name"),
                format!(
                    "is {:?}; expected 1-64 letters, digits, '.', '_' or '-'",
                    r.name
                ),
            ));
        }
        if !seen.insert(r.name.as_str()) {
            return Err((
                key("name"),
                format!("is {:?}, which an earlier [[repository]] has", r.name),
            ));
        }
        if !r.path.is_absolute() {
            return Err((
                key("path"),
                format!("is {}; expected an absolute path", r.path.display()),
            ));
        }
        match (&r.key_file, &r.password_command) {
            (None, None) => {
                return Err((
                    key("key_file"),
                    format!(
                        "is missing for repository {:?}: give key_file (or password_file) or \
                         password_command",
                        r.name
                    ),
                ))
            }
            (Some(_), Some(_)) => {
                return Err((
                    key("password_command"),
                    "is set together with key_file; give only one".to_owned(),
                ))
            }
            (Some(file), None) if !file.is_absolute() => {
                return Err((
                    key("key_file"),
                    format!("is {}; expected an absolute path", file.display()),
                ))
            }
            (None, Some(cmd)) if cmd.trim().is_empty() => {
                return Err((key("password_command"), "is empty".to_owned()))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks the declared sources: paths, names (no two alike), timing bounds as `source add`
/// enforces them. Exclude globs are checked by the daemon, which owns the matcher.
pub fn validate_sources(sources: &[SourceConfig]) -> Result<(), Problem> {
    let mut seen = BTreeSet::new();
    for (i, s) in sources.iter().enumerate() {
        let key = |field: &str| format!("source[{}].{field}", i + 1);
        if !s.path.is_absolute() {
            return Err((
                key("path"),
                format!("is {}; expected an absolute path", s.path.display()),
            ));
        }
        let name = s.name();
        if !valid_name(&name) {
            return Err((
                key("name"),
                format!("is {name:?}; expected 1-64 letters, digits, '.', '_' or '-'"),
            ));
        }
        if !seen.insert(name.clone()) {
            return Err((
                key("name"),
                format!(
                    "is {name:?} (given or derived from the path), which an earlier [[source]] \
                     has; give each source its own name"
                ),
            ));
        }
        if let Some(repo) = &s.repo {
            if !valid_name(repo) {
                return Err((
                    key("repo"),
                    format!("is {repo:?}; expected a repository name"),
                ));
            }
        }
        if s.debounce < Duration::from_millis(100) {
            return Err((
                key("debounce"),
                format!("is {:?}; expected at least 100ms", s.debounce),
            ));
        }
        if s.max_delay < s.debounce {
            return Err((
                key("max_delay"),
                format!(
                    "is {:?}, shorter than debounce ({:?})",
                    s.max_delay, s.debounce
                ),
            ));
        }
        if s.rescan_every < Duration::from_secs(60) {
            return Err((
                key("rescan_every"),
                format!("is {:?}; expected at least 1m", s.rescan_every),
            ));
        }
        if s.keep_all
            && (s.keep_within.is_some()
                || [s.keep_last, s.keep_hourly, s.keep_daily]
                    .iter()
                    .chain(&[s.keep_weekly, s.keep_monthly, s.keep_yearly])
                    .any(Option::is_some))
        {
            return Err((
                key("keep_all"),
                "is set together with keep_* rules; give one or the other".to_owned(),
            ));
        }
        if let Some((field, message)) = crate::schedule::policy_problem(&s.policy()) {
            let field = if field == "keep" { "keep_last" } else { field };
            return Err((key(field), message));
        }
        s.hooks.validate(&key("hooks"), false)?;
    }
    Ok(())
}
