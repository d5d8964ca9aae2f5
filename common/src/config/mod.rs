//! The configuration file's schema (TOML). Every key has an embedded default, so the daemon runs
//! without a file. Unknown keys are errors; `validate` names the key that is wrong.

pub mod audit;
pub mod declared;
pub mod detect;
pub mod hooks;
pub mod maintenance;
pub mod perf;
pub mod security;
pub mod sync;

pub use declared::{RepositoryConfig, SourceConfig};
pub use hooks::{HookStage, HooksConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How the file writes a duration (`"30s"`, `"2h 30m"`; humantime syntax), for the schema the packaging
/// renders backupd.toml(5) from: the fields themselves are `Duration`s read by humantime_serde.
#[cfg(feature = "schema")]
pub struct HumanDuration;

#[cfg(feature = "schema")]
impl schemars::JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "HumanDuration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "format": "duration" })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `message` is the TOML parser's report, several lines with a caret under the error.
    #[error("config file {path} is invalid:\n{message}")]
    Parse { path: PathBuf, message: String },
    /// A command-line flag that overrides a config key has a bad value.
    #[error("{flag} {value:?}: {message}")]
    Flag {
        flag: &'static str,
        value: String,
        message: String,
    },
    #[error("config file {path}: key `{key}` {message}")]
    Invalid {
        path: PathBuf,
        /// Dotted, with 1-based table numbers: `queue.workers`, `source[2].path`.
        key: String,
        message: String,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub server: ServerConfig,
    pub queue: QueueConfig,
    pub history: HistoryConfig,
    pub security: security::SecurityConfig,
    pub audit: audit::AuditConfig,
    pub maintenance: maintenance::MaintenanceConfig,
    /// The performance monitor, bottleneck thresholds and tuner.
    pub perf: perf::PerfConfig,
    /// The optional Prometheus endpoint.
    pub metrics: perf::MetricsConfig,
    /// Commands run around jobs of the kinds it names (docs/OPERATIONS.md, "Hooks").
    pub hooks: HooksConfig,
    /// Limits shared by directory sync and repository replication.
    pub sync: sync::SyncConfig,
    /// Repositories registered at start and on reload, one table each.
    #[serde(rename = "repository", skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<RepositoryConfig>,
    /// Watched sources started at start and on reload, one table each.
    #[serde(rename = "source", skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceConfig>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Socket path; default /run/backupd/backupd.sock as root, else
    /// $XDG_RUNTIME_DIR/backupd/backupd.sock (/tmp/backupd-UID/ without XDG_RUNTIME_DIR).
    /// `--socket` overrides it.
    pub socket: Option<PathBuf>,
    /// State directory; default depends on the run mode. `--state-dir` overrides it.
    pub state_dir: Option<PathBuf>,
    /// A tracing filter such as `info` or `backupd=debug,info`. `--log-level` overrides it.
    pub log_level: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Octal permission bits of the socket file, e.g. "0660". Default: 0600 in user mode, 0660 in
    /// system mode.
    pub socket_mode: Option<String>,
    /// Group owning the socket in system mode (default "backupd" when that group exists).
    pub socket_group: Option<String>,
    /// Connections served at once; further ones get a `Busy` error and are closed.
    pub max_connections: usize,
    /// Connections one non-admin uid may hold at once; admins (root and the daemon's own uid)
    /// are not limited per uid.
    pub max_connections_per_uid: usize,
    /// Of `max_connections`, this many (at most half) are kept for admins: non-admin uids
    /// together never hold more than the rest, so root can always get in.
    pub admin_reserved_connections: usize,
    /// A connection silent for this long (between requests) is closed.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A new connection must complete the Hello exchange within this time.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Largest frame accepted from an admin, or sent, in bytes. Before the handshake and from
    /// uids that are not admins the limit is 64 KiB.
    pub max_frame_bytes: usize,
    /// Bytes all connections together may hold in partly received frames larger than 4 KiB; a
    /// frame that gets no share within a few seconds is answered with `Busy` and its connection
    /// closed.
    pub frame_budget_bytes: usize,
    /// On shutdown, how long running requests may take to finish before they are dropped.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl ServerConfig {
    /// Connections non-admin uids may hold together: `max_connections` minus the admin reserve,
    /// which is capped at half so a small `max_connections` still lets non-admin uids in.
    pub fn non_admin_connections(&self) -> usize {
        let reserved = self
            .admin_reserved_connections
            .min(self.max_connections / 2);
        self.max_connections - reserved
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            socket_mode: None,
            socket_group: None,
            max_connections: 1024,
            max_connections_per_uid: 64,
            admin_reserved_connections: 16,
            idle_timeout: Duration::from_secs(300),
            handshake_timeout: Duration::from_secs(10),
            max_frame_bytes: crate::codec::DEFAULT_MAX_FRAME,
            frame_budget_bytes: 64 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// The job queue. Durations are written like "30s" or "2h".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Jobs run at once (1–8); `backupctl queue workers N` changes it until the next restart.
    pub workers: u32,
    /// A queued job gains one priority level per this much waiting, so low priority work cannot
    /// starve.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub aging: Duration,
    /// Retries after a retryable failure, before the job goes to the dead-letter queue.
    pub retries: u32,
    /// Delay before the first retry; it doubles for each further one (plus up to 25 % jitter).
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub backoff: Duration,
    /// No retry delay grows beyond this.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Time one attempt may run before it is cancelled as timed out.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Per-kind timeouts overriding `timeout`.
    pub timeouts: KindTimeouts,
    /// A job that was running when the daemon died this many times in a row goes to the
    /// dead-letter queue instead of being run again (it may be what kills the daemon).
    pub max_crashes: u32,
    /// Finished jobs kept for `queue history` and the analytics (dead letters are kept until
    /// purged).
    pub history_max_jobs: usize,
    /// Finished jobs older than this leave the live queue (see also `[history]`).
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub history_max_age: Duration,
    /// Job submissions per second each uid may make on average (bursts up to `submit_burst`).
    pub submit_rate: f64,
    /// Job submissions each uid may make in a burst, above `submit_rate`.
    pub submit_burst: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            aging: Duration::from_secs(600),
            retries: 3,
            backoff: Duration::from_secs(30),
            backoff_max: Duration::from_secs(3600),
            timeout: Duration::from_secs(1800),
            timeouts: KindTimeouts::default(),
            max_crashes: 3,
            history_max_jobs: 10_000,
            history_max_age: Duration::from_secs(30 * 86_400),
            submit_rate: 50.0,
            submit_burst: 200,
        }
    }
}

/// How long finished jobs stay in the job history (`queue history`, analytics).
/// Independent of the live queue's `queue.history_max_*`. An entry goes when it is older than
/// `max_age` or beyond the newest `max_entries`; 0 switches that limit off (not both).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Entries older than this go (0: no age limit).
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Only the newest this many entries are kept (0: no count limit).
    pub max_entries: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(365 * 86_400),
            max_entries: 200_000,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct KindTimeouts {
    /// Timeout of backup jobs; not set: `queue.timeout`.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::HumanDuration>")
    )]
    #[serde(with = "humantime_serde")]
    pub backup: Option<Duration>,
    /// Timeout of restore jobs; not set: `queue.timeout`.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::HumanDuration>")
    )]
    #[serde(with = "humantime_serde")]
    pub restore: Option<Duration>,
    /// Timeout of check jobs; not set: `queue.timeout`.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::HumanDuration>")
    )]
    #[serde(with = "humantime_serde")]
    pub check: Option<Duration>,
    /// Timeout of forget jobs; not set: `queue.timeout`.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::HumanDuration>")
    )]
    #[serde(with = "humantime_serde")]
    pub forget: Option<Duration>,
    /// Timeout of rebuild-index jobs; not set: `queue.timeout`.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::HumanDuration>")
    )]
    #[serde(with = "humantime_serde")]
    pub rebuild_index: Option<Duration>,
    /// Timeout of noop jobs; not set: `queue.timeout`.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::HumanDuration>")
    )]
    #[serde(with = "humantime_serde")]
    pub noop: Option<Duration>,
    /// Timeout of reencrypt jobs; not set: `queue.timeout`.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::HumanDuration>")
    )]
    #[serde(with = "humantime_serde")]
    pub reencrypt: Option<Duration>,
    /// Timeout of migrate jobs; not set: `queue.timeout`.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::HumanDuration>")
    )]
    #[serde(with = "humantime_serde")]
    pub migrate: Option<Duration>,
    /// Timeout of prune jobs; not set: `queue.timeout`.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::HumanDuration>")
    )]
    #[serde(with = "humantime_serde")]
    pub prune: Option<Duration>,
    /// Timeout of sync jobs; not set: `queue.timeout`.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::HumanDuration>")
    )]
    #[serde(with = "humantime_serde")]
    pub sync: Option<Duration>,
    /// Timeout of replicate jobs; not set: `queue.timeout`.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::HumanDuration>")
    )]
    #[serde(with = "humantime_serde")]
    pub replicate: Option<Duration>,
    /// Timeout of recovery jobs; not set: `queue.timeout`.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::HumanDuration>")
    )]
    #[serde(with = "humantime_serde")]
    pub recovery: Option<Duration>,
    /// Timeout of drill jobs; not set: `queue.timeout`.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::HumanDuration>")
    )]
    #[serde(with = "humantime_serde")]
    pub drill: Option<Duration>,
}

impl KindTimeouts {
    /// The override for a kind, by its name (`JobKind::name`).
    pub fn get(&self, kind: &str) -> Option<Duration> {
        match kind {
            "backup" => self.backup,
            "restore" => self.restore,
            "check" => self.check,
            "forget" => self.forget,
            "rebuild-index" => self.rebuild_index,
            "noop" => self.noop,
            "reencrypt" => self.reencrypt,
            "migrate" => self.migrate,
            "prune" => self.prune,
            "sync" => self.sync,
            "replicate" => self.replicate,
            "recovery" => self.recovery,
            "drill" => self.drill,
            _ => None,
        }
    }
}

/// The level names a log filter may use.
pub const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Checks a log filter (`log_level`, `--log-level`): comma-separated directives, each a level
/// (`info`) or `target=level` (`backupd=debug`). The tracing filter syntax would also take a
/// bare word as a target name, which turns a misspelt level such as `verbose` into a filter
/// that lets nothing through; so a bare word must be a level.
pub fn check_log_level(filter: &str) -> Result<(), String> {
    let valid = || {
        format!(
            "valid levels are {}; per target e.g. `backupd=debug,info`",
            LOG_LEVELS.join(", ")
        )
    };
    let is_level = |word: &str| LOG_LEVELS.iter().any(|l| word.eq_ignore_ascii_case(l));
    let directives: Vec<&str> = filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    if directives.is_empty() {
        return Err(format!("no level given; {}", valid()));
    }
    for directive in directives {
        let level = match directive.rsplit_once('=') {
            Some((target, level)) if !target.trim().is_empty() => level.trim(),
            Some(_) => return Err(format!("`{directive}` names no target; {}", valid())),
            None => directive,
        };
        if !is_level(level) {
            return Err(format!("`{level}` is not a log level; {}", valid()));
        }
    }
    Ok(())
}

/// Parses an octal mode string such as "0660" or "660".
pub fn parse_mode(text: &str) -> Option<u32> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o777)
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates config text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Checks values that the schema alone cannot.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            message,
        };
        if let Some((key, message)) = self.audit.problem() {
            return Err(invalid(key, message));
        }
        if let Some((key, message)) = self.maintenance.problem() {
            return Err(invalid(key, message));
        }
        if let Some((key, message)) = self.sync.problem() {
            return Err(invalid(key, message));
        }
        if let Some((key, message)) = self.perf.problem().or_else(|| self.metrics.problem()) {
            return Err(invalid(key, message));
        }
        if let Some((key, message)) = self.security.detect.invalid() {
            return Err(invalid(&format!("security.detect.{key}"), message));
        }
        if let Some((key, message)) = self.security.compliance.invalid() {
            return Err(invalid(&format!("security.compliance.{key}"), message));
        }
        let s = &self.server;
        if let Some(mode) = &s.socket_mode {
            if parse_mode(mode).is_none() {
                return Err(invalid(
                    "server.socket_mode",
                    format!("is {mode:?}; expected octal permission bits such as \"0660\""),
                ));
            }
        }
        if let Some(group) = &s.socket_group {
            if group.is_empty() || group.contains(['/', ':', '\n']) {
                return Err(invalid(
                    "server.socket_group",
                    format!("is {group:?}; expected a group name"),
                ));
            }
        }
        if !(1..=65_536).contains(&s.max_connections) {
            return Err(invalid(
                "server.max_connections",
                format!("is {}; expected 1 to 65536", s.max_connections),
            ));
        }
        if s.max_connections_per_uid == 0 {
            return Err(invalid(
                "server.max_connections_per_uid",
                "is 0; expected at least 1".to_owned(),
            ));
        }
        if !(4096..=crate::codec::DEFAULT_MAX_FRAME * 16).contains(&s.max_frame_bytes) {
            return Err(invalid(
                "server.max_frame_bytes",
                format!("is {}; expected 4096 to 268435456", s.max_frame_bytes),
            ));
        }
        if s.frame_budget_bytes < s.max_frame_bytes {
            return Err(invalid(
                "server.frame_budget_bytes",
                format!(
                    "is {}; expected at least server.max_frame_bytes ({}), or no frame of that \
                     size could ever be received",
                    s.frame_budget_bytes, s.max_frame_bytes
                ),
            ));
        }
        for (key, value) in [
            ("server.idle_timeout", s.idle_timeout),
            ("server.handshake_timeout", s.handshake_timeout),
        ] {
            if value < Duration::from_millis(100) {
                return Err(invalid(
                    key,
                    format!("is {value:?}; expected at least 100ms"),
                ));
            }
        }
        let q = &self.queue;
        if !(1..=8).contains(&q.workers) {
            return Err(invalid(
                "queue.workers",
                format!("is {}; expected 1 to 8", q.workers),
            ));
        }
        if !(1..=100).contains(&q.max_crashes) {
            return Err(invalid(
                "queue.max_crashes",
                format!("is {}; expected 1 to 100", q.max_crashes),
            ));
        }
        if q.retries > 100 {
            return Err(invalid(
                "queue.retries",
                format!("is {}; expected 0 to 100", q.retries),
            ));
        }
        if !(q.submit_rate.is_finite() && q.submit_rate > 0.0) {
            return Err(invalid(
                "queue.submit_rate",
                format!(
                    "is {}; expected a positive number per second",
                    q.submit_rate
                ),
            ));
        }
        if q.submit_burst == 0 {
            return Err(invalid(
                "queue.submit_burst",
                "is 0; expected at least 1".to_owned(),
            ));
        }
        if q.backoff_max < q.backoff {
            return Err(invalid(
                "queue.backoff_max",
                format!(
                    "is {:?}, less than queue.backoff ({:?})",
                    q.backoff_max, q.backoff
                ),
            ));
        }
        for (key, value) in [
            ("queue.aging", Some(q.aging)),
            ("queue.timeout", Some(q.timeout)),
            ("queue.timeouts.backup", q.timeouts.backup),
            ("queue.timeouts.restore", q.timeouts.restore),
            ("queue.timeouts.check", q.timeouts.check),
            ("queue.timeouts.forget", q.timeouts.forget),
            ("queue.timeouts.rebuild-index", q.timeouts.rebuild_index),
            ("queue.timeouts.noop", q.timeouts.noop),
            ("queue.timeouts.reencrypt", q.timeouts.reencrypt),
            ("queue.timeouts.migrate", q.timeouts.migrate),
            ("queue.timeouts.prune", q.timeouts.prune),
            ("queue.timeouts.sync", q.timeouts.sync),
            ("queue.timeouts.replicate", q.timeouts.replicate),
            ("queue.timeouts.recovery", q.timeouts.recovery),
            ("queue.timeouts.drill", q.timeouts.drill),
        ] {
            if value.is_some_and(|v| v < Duration::from_secs(1)) {
                return Err(invalid(key, format!("is {value:?}; expected at least 1s")));
            }
        }
        let h = &self.history;
        if h.max_age.is_zero() && h.max_entries == 0 {
            return Err(invalid(
                "history.max_entries",
                "and history.max_age are both 0 (no limit): the history would grow without \
                 bound; set at least one"
                    .to_owned(),
            ));
        }
        if !h.max_age.is_zero() && h.max_age < Duration::from_secs(3600) {
            return Err(invalid(
                "history.max_age",
                format!(
                    "is {:?}; expected 0 (no age limit) or at least 1h",
                    h.max_age
                ),
            ));
        }
        if let Some(level) = &self.daemon.log_level {
            check_log_level(level).map_err(|message| {
                invalid("daemon.log_level", format!("is {level:?}: {message}"))
            })?;
        }
        for (key, value) in [
            ("daemon.socket", &self.daemon.socket),
            ("daemon.state_dir", &self.daemon.state_dir),
        ] {
            if let Some(p) = value {
                if !p.is_absolute() {
                    return Err(invalid(
                        key,
                        format!("is {}; expected an absolute path", p.display()),
                    ));
                }
            }
        }
        self.hooks
            .validate("hooks", true)
            .map_err(|(key, message)| invalid(&key, message))?;
        declared::validate_repositories(&self.repositories)
            .and_then(|()| declared::validate_sources(&self.sources))
            .and_then(|()| self.security.validate())
            .map_err(|(key, message)| invalid(&key, message))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/backupd/config.toml"))
    }

    #[test]
    fn empty_file_gives_embedded_defaults() {
        assert_eq!(parse("").expect("parses"), Config::default());
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err =
            parse("[server]\nmax_connections = 10\nmax_conections = 5\n").expect_err("unknown key");
        let text = err.to_string();
        assert!(text.contains("/etc/backupd/config.toml"), "{text}");
        assert!(text.contains("max_conections"), "{text}");
        assert!(text.contains("line 3"), "{text}");
    }

    #[test]
    fn bad_value_names_the_key() {
        let err = parse("[server]\nsocket_mode = \"0999\"\n").expect_err("bad mode");
        assert!(err.to_string().contains("server.socket_mode"), "{err}");
        let err = parse("[server]\nmax_connections = 0\n").expect_err("zero");
        assert!(err.to_string().contains("server.max_connections"), "{err}");
        let err = parse("[server]\nframe_budget_bytes = 4096\n").expect_err("budget");
        assert!(
            err.to_string().contains("server.frame_budget_bytes"),
            "{err}"
        );
        let err = parse("[queue]\nworkers = 9\n").expect_err("workers");
        assert!(err.to_string().contains("queue.workers"), "{err}");
        let err = parse("[queue.timeouts]\nbackup = \"10ms\"\n").expect_err("timeout");
        assert!(err.to_string().contains("queue.timeouts.backup"), "{err}");
    }

    #[test]
    fn history_section_parses_and_refuses_no_limit_at_all() {
        let c = parse("[history]\nmax_age = \"30days\"\nmax_entries = 500\n").expect("valid");
        assert_eq!(c.history.max_age, Duration::from_secs(30 * 86_400));
        assert_eq!(c.history.max_entries, 500);
        assert_eq!(parse("").expect("empty").history, HistoryConfig::default());
        let err = parse("[history]\nmax_age = \"0s\"\nmax_entries = 0\n").expect_err("unbounded");
        assert!(err.to_string().contains("history.max_entries"), "{err}");
        let err = parse("[history]\nmax_age = \"5m\"\n").expect_err("too short");
        assert!(err.to_string().contains("history.max_age"), "{err}");
    }

    #[test]
    fn queue_section_parses_per_kind_timeouts() {
        let c = parse("[queue]\nworkers = 1\n[queue.timeouts]\nrebuild-index = \"2h\"\n")
            .expect("parses");
        assert_eq!(c.queue.workers, 1);
        assert_eq!(
            c.queue.timeouts.get("rebuild-index"),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(c.queue.timeouts.get("backup"), None);
    }

    #[test]
    fn durations_are_human_readable() {
        let c = parse("[server]\nidle_timeout = \"90s\"\n").expect("parses");
        assert_eq!(c.server.idle_timeout, Duration::from_secs(90));
    }

    #[test]
    fn declared_repositories_and_sources_parse_with_defaults() {
        let c = parse(
            "[[repository]]\nname = \"offsite\"\npath = \"/srv/repo\"\n\
             password_file = \"/etc/backupd/offsite.key\"\n\
             [[source]]\npath = \"/home/ann\"\nrepo = \"offsite\"\n\
             [[source]]\npath = \"/etc\"\nname = \"config\"\nwatch = false\n\
             debounce = \"5s\"\nexcludes = [\"*.tmp\"]\n",
        )
        .expect("parses");
        assert_eq!(c.repositories.len(), 1);
        assert_eq!(
            c.repositories[0].key_file.as_deref(),
            Some(Path::new("/etc/backupd/offsite.key"))
        );
        assert_eq!(c.sources[0].name(), "ann");
        assert!(c.sources[0].watch);
        assert_eq!(c.sources[0].debounce, declared::SOURCE_DEBOUNCE);
        assert_eq!(c.sources[1].name(), "config");
        assert_eq!(c.sources[1].debounce, Duration::from_secs(5));
        assert!(!c.sources[1].watch);
    }

    #[test]
    fn bad_declared_entries_name_the_key() {
        let cases = [
            (
                "[[repository]]\nname = \"a b\"\npath = \"/r\"\nkey_file = \"/k\"\n",
                "repository[1].name",
            ),
            (
                "[[repository]]\nname = \"a\"\npath = \"r\"\nkey_file = \"/k\"\n",
                "repository[1].path",
            ),
            (
                "[[repository]]\nname = \"a\"\npath = \"/r\"\n",
                "repository[1].key_file",
            ),
            (
                "[[repository]]\nname = \"a\"\npath = \"/r\"\nkey_file = \"/k\"\n\
                 password_command = \"pass a\"\n",
                "repository[1].password_command",
            ),
            (
                "[[repository]]\nname = \"a\"\npath = \"/r\"\nkey_file = \"/k\"\n\
                 [[repository]]\nname = \"a\"\npath = \"/s\"\nkey_file = \"/k\"\n",
                "repository[2].name",
            ),
            ("[[source]]\npath = \"home\"\n", "source[1].path"),
            (
                "[[source]]\npath = \"/a/x\"\n[[source]]\npath = \"/b/x\"\n",
                "source[2].name",
            ),
            (
                "[[source]]\npath = \"/x\"\ndebounce = \"10ms\"\n",
                "source[1].debounce",
            ),
            (
                "[[source]]\npath = \"/x\"\nmax_delay = \"1s\"\n",
                "source[1].max_delay",
            ),
            (
                "[[source]]\npath = \"/x\"\nrescan_every = \"10s\"\n",
                "source[1].rescan_every",
            ),
            (
                "[[source]]\npath = \"/x\"\n[[source]]\npath = \"/y\"\n\
                 hooks = { before = [\"dump.sh\"] }\n",
                "source[2].hooks.before",
            ),
            (
                "[[source]]\npath = \"/x\"\n[source.hooks]\nkinds = [\"check\"]\n",
                "source[1].hooks.kinds",
            ),
            ("[hooks]\non_success = []\n", "hooks.on_success"),
            ("[hooks]\nkinds = [\"backups\"]\n", "hooks.kinds"),
        ];
        for (text, key) in cases {
            let err = parse(text).expect_err(key);
            assert!(
                err.to_string().contains(&format!("`{key}`")),
                "{key}: {err}"
            );
        }
        let err = parse("[[source]]\npath = \"/x\"\nwatched = true\n").expect_err("unknown");
        assert!(err.to_string().contains("watched"), "{err}");
    }

    #[test]
    fn global_and_source_hooks_parse() {
        let c = parse(
            "[hooks]\nafter = [\"/usr/bin/logger\", \"done\"]\nkinds = [\"backup\", \"check\"]\n\
             [[source]]\npath = \"/srv/db\"\n[source.hooks]\n\
             before = [\"/usr/local/bin/dump-db\"]\ntimeout = \"20m\"\n",
        )
        .expect("parses");
        assert!(c.hooks.runs_for("check"));
        assert_eq!(
            c.hooks.command(HookStage::After).map(<[String]>::len),
            Some(2)
        );
        let h = &c.sources[0].hooks;
        assert_eq!(h.timeout, Duration::from_secs(1200));
        assert!(h.command(HookStage::Before).is_some() && h.command(HookStage::After).is_none());
    }

    #[test]
    fn log_levels_are_checked_and_a_misspelt_one_names_the_valid_ones() {
        for ok in [
            "info",
            "DEBUG",
            "backupd=trace,info",
            "warn, backupd::watch=debug",
        ] {
            assert_eq!(check_log_level(ok), Ok(()), "{ok}");
        }
        for bad in ["verbose", "", "backupd=loud", "=info", "info,chatty"] {
            let err = check_log_level(bad).expect_err(bad);
            assert!(
                err.contains("trace, debug, info, warn, error, off"),
                "{bad}: {err}"
            );
        }
        let err = parse("[daemon]\nlog_level = \"verbose\"\n").expect_err("verbose");
        assert!(err.to_string().contains("daemon.log_level"), "{err}");
    }

    #[test]
    fn toml_errors_keep_the_caret_diagram_on_its_own_lines() {
        let err = parse("[server]\nmax_connections = \"many\"\n").expect_err("bad type");
        let text = err.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() >= 4, "{text}");
        let code = lines
            .iter()
            .position(|l| l.contains("max_connections = \"many\""));
        let caret = code.map(|i| lines[i + 1]);
        assert!(caret.is_some_and(|l| l.contains('^')), "{text}");
        assert!(!lines[0].contains("max_connections"), "{text}");
    }

    #[test]
    fn modes_parse_as_octal() {
        assert_eq!(parse_mode("0660"), Some(0o660));
        assert_eq!(parse_mode("666"), Some(0o666));
        assert_eq!(parse_mode("0o600"), Some(0o600));
        assert_eq!(parse_mode("1777"), None);
        assert_eq!(parse_mode("rw"), None);
    }
}
