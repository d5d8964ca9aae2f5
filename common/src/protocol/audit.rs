//! The audit log's wire types: one entry as stored (sled, the JSONL day files) and as sent,
//! queries, and what `security audit verify` found. `docs/FORMAT.md` ("Audit log") describes
//! the stored form and the hash chain; the field order of [`AuditEntry`] is part of the hashed
//! encoding and never changes.

use serde::{Deserialize, Serialize};

/// Paths kept in one entry's target; the rest are counted in `paths_omitted`.
pub const MAX_TARGET_PATHS: usize = 16;
/// Bytes kept of one path (escaped) in an entry; longer ones end in `…`.
pub const MAX_TARGET_PATH_CHARS: usize = 512;
/// Most entries one query returns.
pub const MAX_QUERY_LIMIT: u32 = 10_000;

/// How much an entry matters, lowest first (journal priorities: debug 7, info 6, notice 5,
/// warning 4, critical 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Debug,
    Info,
    Notice,
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: &'static [Severity] = &[
        Self::Debug,
        Self::Info,
        Self::Notice,
        Self::Warning,
        Self::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Notice => "notice",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// What an entry is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// A connection whose handshake failed.
    Auth,
    /// A request refused by the permission check.
    Denied,
    /// Configuration and daemon control: reload, shutdown, state export and import, workers.
    Config,
    /// Repositories: create, register, remove, check, re-index, list snapshots, statistics.
    Repo,
    /// Key material: export, add, change a passphrase.
    Key,
    Backup,
    Restore,
    Forget,
    /// The job queue: job results, cancels, dead letters.
    Queue,
    /// Watched sources.
    Source,
    /// Roles, bindings, the audit log itself.
    Security,
    /// Suspicious activity detected.
    Alert,
}

impl EventType {
    pub const ALL: &'static [EventType] = &[
        Self::Auth,
        Self::Denied,
        Self::Config,
        Self::Repo,
        Self::Key,
        Self::Backup,
        Self::Restore,
        Self::Forget,
        Self::Queue,
        Self::Source,
        Self::Security,
        Self::Alert,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Denied => "denied",
            Self::Config => "config",
            Self::Repo => "repo",
            Self::Key => "key",
            Self::Backup => "backup",
            Self::Restore => "restore",
            Self::Forget => "forget",
            Self::Queue => "queue",
            Self::Source => "source",
            Self::Security => "security",
            Self::Alert => "alert",
        }
    }
}

macro_rules! parse_by_name {
    ($ty:ty, $what:literal) => {
        impl std::str::FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| {
                        let names: Vec<_> = Self::ALL.iter().map(|v| v.as_str()).collect();
                        format!(
                            concat!("unknown ", $what, " `{}`; one of: {}"),
                            s,
                            names.join(", ")
                        )
                    })
            }
        }
    };
}
parse_by_name!(Severity, "severity");
parse_by_name!(EventType, "event type");

/// How the audited thing ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    Ok,
    Error,
    Denied,
    /// A streamed reply that ended without a result.
    Cut,
}

/// What a request acted on. Paths are escaped text, bounded by [`MAX_TARGET_PATHS`] and
/// [`MAX_TARGET_PATH_CHARS`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditTarget {
    pub repo: Option<String>,
    pub snapshot: Option<String>,
    pub paths: Vec<String>,
    /// Paths beyond the first [`MAX_TARGET_PATHS`].
    pub paths_omitted: u64,
    pub job: Option<String>,
    /// Another name the request acted on (a source, a state document's size).
    pub name: Option<String>,
}

/// One entry of the audit log. The field order is the canonical encoding: `hash` is the SHA-256
/// of the JSON of every field before it (see docs/FORMAT.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// 1 for the first entry ever written; consecutive.
    pub seq: u64,
    /// RFC 3339, UTC.
    pub time: String,
    pub time_ns: i64,
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    /// The caller's role when the entry was written; `None`: no role.
    pub role: Option<String>,
    /// The permission the request needed (`area.verb`).
    pub permission: Option<String>,
    pub event: EventType,
    pub severity: Severity,
    /// The command as users type it (`repo init`), never arguments that carry secrets.
    pub request: String,
    pub target: AuditTarget,
    pub outcome: AuditOutcome,
    /// The error code (`permission-denied`, `not-found`) of a refused or failed request.
    pub error_code: Option<String>,
    /// The error message, or what an alert or failed handshake was about.
    pub message: Option<String>,
    /// Lowercase hex SHA-256 of the previous entry (`hash`), or of the anchor after retention
    /// cut older entries; 64 zeros before the first entry.
    pub prev: String,
    pub hash: String,
}

/// `security audit`'s filters. Every field given must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    /// Entries at or after this time (ns since the epoch).
    pub since_ns: Option<i64>,
    /// Entries before this time (ns since the epoch).
    pub until_ns: Option<i64>,
    pub uid: Option<u32>,
    pub event: Option<EventType>,
    /// This severity or a higher one.
    pub severity: Option<Severity>,
    /// The newest this many matching entries (capped at [`MAX_QUERY_LIMIT`]); 0: the default
    /// (100).
    pub limit: u32,
    /// After the stored entries, stream new matching ones until the client leaves.
    pub follow: bool,
}

/// A signed checkpoint: the chain's head at `seq`, HMAC-SHA256 under the daemon's audit key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCheckpoint {
    pub seq: u64,
    pub hash: String,
    pub time: String,
    pub time_ns: i64,
    /// Lowercase hex HMAC-SHA256 over `checkpoint|<seq>|<hash>|<time_ns>`.
    pub mac: String,
}

/// Where a problem was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditStore {
    Sled,
    Files,
    Checkpoints,
}

/// The first problem `verify` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditProblem {
    pub store: AuditStore,
    /// The entry named: the first one changed, removed (the one after the gap) or out of
    /// order.
    pub seq: u64,
    /// `changed`, `removed`, `reordered`, `mismatch` (sled and files disagree), `bad-signature`,
    /// `unreadable`.
    pub kind: String,
    /// What was found, for people.
    pub detail: String,
    /// The day file or `sled`.
    pub location: String,
}

/// What `security audit verify` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Entries checked (in sled; the files hold the same ones when intact).
    pub entries: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub checkpoints: u64,
    pub last_checkpoint: Option<AuditCheckpoint>,
    /// `None`: every link, every checkpoint signature and both stores agree.
    pub problem: Option<AuditProblem>,
    /// When this check ran (RFC 3339).
    pub verified_at: String,
}

impl VerifyReport {
    pub fn intact(&self) -> bool {
        self.problem.is_none()
    }
}
