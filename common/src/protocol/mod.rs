//! The control protocol's messages. `docs/PROTOCOL.md` describes the exchange; this file is the
//! single definition of its types.
//!
//! Frames carry bincode (serde, standard config) of [`ClientMessage`] or [`ServerMessage`].
//! Bincode encodes enum variants by index, so variants are only ever appended; changing the
//! meaning or order of an existing variant requires a new [`PROTOCOL_VERSION`].

pub mod alerts;
pub mod analytics;
pub mod audit;
pub mod browse;
pub mod file_crypt;
pub mod perf;
pub mod queue;
pub mod recovery;
pub mod recovery_plan;
pub mod replicate;
pub mod repo;
pub mod schedule;
pub mod security;
pub mod source;
pub mod sync;

use crate::error::ErrorReply;
use crate::ids::RequestId;
pub use alerts::*;
pub use analytics::*;
pub use audit::*;
pub use browse::*;
pub use file_crypt::*;
pub use perf::*;
pub use queue::*;
pub use recovery::*;
pub use recovery_plan::*;
pub use replicate::*;
pub use repo::*;
pub use schedule::*;
pub use security::{
    BindingInfo, CheckAnswer, Expiry, GrantSource, Permission, RevokeTarget, Role, SecurityRequest,
    SecurityResponse, Subject,
};
use serde::{Deserialize, Serialize};
pub use source::*;
use std::time::Duration;
pub use sync::*;

/// Version of the message set below. Client and daemon must agree on it exactly.
pub const PROTOCOL_VERSION: u32 = 16;

/// Everything a client sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// First message on every connection; answered by [`ServerMessage::Welcome`] or a fatal
    /// `VersionMismatch` error.
    Hello(Hello),
    /// A request; answered by zero or more [`ServerMessage::Progress`] frames carrying the same id,
    /// then exactly one [`ServerMessage::Reply`]. Requests on one connection are answered in order.
    Request { id: RequestId, request: Request },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u32,
    /// The client program and its version, e.g. `backupctl 0.1.0`; shown in logs.
    pub client: String,
}

/// Everything the daemon sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ServerMessage {
    Welcome(Welcome),
    /// An intermediate frame of a streamed response.
    Progress {
        id: RequestId,
        progress: Progress,
    },
    /// The final frame of a response.
    Reply {
        id: RequestId,
        result: Result<Response, ErrorReply>,
    },
    /// A connection-level error (bad frame, version mismatch, timeout, connection cap); the
    /// daemon closes the connection after sending it.
    Fatal(ErrorReply),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub protocol_version: u32,
    pub daemon_version: String,
    /// Who the daemon believes the caller is (from SO_PEERCRED) and the role it grants.
    pub identity: Identity,
}

/// The caller as the kernel reports it, and the role the daemon derives from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    /// `None` when no binding names the caller and `security.default_role` is "none": every
    /// request is refused.
    pub role: Option<Role>,
}

/// Requests, grouped like backupctl's command groups.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    System(SystemRequest),
    Repo(RepoRequest),
    /// -> `Response::Snapshots`.
    Snapshots(SnapshotsRequest),
    /// Long work (backup, restore, check, forget, rebuild-index) runs as jobs of the queue.
    Queue(QueueRequest),
    /// Continuously backed-up directories.
    Source(SourceRequest),
    /// Roles, bindings, the audit log, alerts, compliance: `backupctl security ...`.
    Security(SecurityRequest),
    /// The performance monitor and tuner: `backupctl perf ...`.
    Perf(PerfRequest),
    /// Directory sync pairs: `backupctl sync ...` (runs are jobs of kind `sync`).
    Sync(SyncRequest),
    /// Snapshot fitness and selection, recovery plans and objectives: `backupctl recovery ...`
    /// (running a plan is a job of kind `recovery`, a drill one of kind `drill`).
    Recovery(RecoveryRequest),
    /// Browsing snapshots: `backupctl ls`, `find`, `diff`, `cat` (answered directly, not
    /// queued; see [`BrowseRequest`] for each reply).
    Browse(BrowseRequest),
    /// Analytics over the job history: `backupctl analytics ...`.
    Analytics(AnalyticsRequest),
}

impl Request {
    /// The permission the daemon checks before the request reaches a service.
    pub fn permission(&self) -> Permission {
        match self {
            Self::System(r) => r.permission(),
            Self::Repo(RepoRequest::List | RepoRequest::Info { .. } | RepoRequest::Stats(_)) => {
                Permission::RepoRead
            }
            Self::Repo(
                RepoRequest::KeyExport { .. }
                | RepoRequest::KeyAdd { .. }
                | RepoRequest::KeyPasswd { .. }
                | RepoRequest::KeyRotate { .. }
                | RepoRequest::KeyList { .. }
                | RepoRequest::KeyRemove { .. },
            ) => Permission::RepoKey,
            Self::Repo(
                RepoRequest::Init { .. }
                | RepoRequest::Add { .. }
                | RepoRequest::Remove { .. }
                | RepoRequest::InitReplica(_)
                | RepoRequest::ReplicateAdd(_)
                | RepoRequest::ReplicateRemove { .. },
            ) => Permission::RepoManage,
            Self::Repo(RepoRequest::ReplicateList) => Permission::RepoRead,
            Self::Snapshots(_) => Permission::SnapshotList,
            Self::Queue(r) => r.permission(),
            Self::Source(r) => r.permission(),
            Self::Security(r) => r.permission(),
            Self::Perf(r) if r.changes_state() => Permission::SystemManage,
            Self::Perf(_) => Permission::SystemRead,
            Self::Sync(r) => r.permission(),
            Self::Recovery(r) => r.permission(),
            // `cat` reveals content, as a restore does; the others names and metadata.
            Self::Browse(BrowseRequest::Cat(_)) => Permission::RestoreOwn,
            Self::Browse(_) => Permission::SnapshotList,
            // Releasing a hold lets retention delete snapshots again: an admin's decision.
            Self::Analytics(r) if r.changes_state() => Permission::SystemManage,
            Self::Analytics(_) => Permission::SystemRead,
        }
    }

    /// How many file descriptors the request's frame carries (`SCM_RIGHTS`, docs/PROTOCOL.md,
    /// "Passing files"); descriptors sent with any other request are closed unread.
    pub fn descriptors(&self) -> usize {
        match self {
            Self::Security(SecurityRequest::Encrypt(_) | SecurityRequest::Decrypt(_)) => {
                FILE_CRYPT_DESCRIPTORS
            }
            _ => 0,
        }
    }

    /// The command as users type it, for logs and denials.
    pub fn name(&self) -> &'static str {
        match self {
            Self::System(r) => r.name(),
            Self::Repo(RepoRequest::Init { .. }) => "repo init",
            Self::Repo(RepoRequest::Add { .. }) => "repo add",
            Self::Repo(RepoRequest::List) => "repo list",
            Self::Repo(RepoRequest::KeyExport { .. }) => "repo key export",
            Self::Repo(RepoRequest::Remove { .. }) => "repo remove",
            Self::Repo(RepoRequest::Info { .. }) => "repo info",
            Self::Repo(RepoRequest::KeyAdd { .. }) => "repo key add",
            Self::Repo(RepoRequest::KeyPasswd { .. }) => "repo key passwd",
            Self::Repo(RepoRequest::KeyRotate { .. }) => "repo key rotate",
            Self::Repo(RepoRequest::KeyList { .. }) => "repo key list",
            Self::Repo(RepoRequest::KeyRemove { .. }) => "repo key remove",
            Self::Repo(RepoRequest::Stats(_)) => "stats",
            Self::Repo(RepoRequest::InitReplica(_)) => "repo init",
            Self::Repo(RepoRequest::ReplicateAdd(_)) => "repo replicate add",
            Self::Repo(RepoRequest::ReplicateList) => "repo replicate list",
            Self::Repo(RepoRequest::ReplicateRemove { .. }) => "repo replicate remove",
            Self::Snapshots(_) => "snapshots",
            Self::Queue(r) => r.name(),
            Self::Source(r) => r.name(),
            Self::Security(r) => r.name(),
            Self::Perf(r) => r.name(),
            Self::Sync(r) => r.name(),
            Self::Recovery(r) => r.name(),
            Self::Browse(r) => r.name(),
            Self::Analytics(r) => r.name(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SystemRequest {
    /// -> [`Response::Health`]. Not streamed.
    Health,
    /// -> [`Progress::Health`] every `interval`, `count` times (0 = until the client goes away),
    /// then [`Response::Done`]. Streamed.
    WatchHealth { interval: Duration, count: u32 },
    /// -> [`Response::Identity`]. Not streamed.
    Whoami,
    /// Re-read the configuration file -> [`Response::Reloaded`], or `InvalidArgument` naming the
    /// file and key while the old configuration stays in force. Not streamed.
    Reload,
    /// -> [`Response::ShuttingDown`], sent before the daemon starts to stop. Not streamed.
    Shutdown,
    /// The registry and sources as a portable, versioned JSON document (docs/FORMAT.md, "State
    /// export") -> [`Response::StateExport`]. Not streamed.
    ExportState,
    /// Merges such a document -> [`Response::StateImported`], or `InvalidArgument` for a format
    /// or version this daemon does not know (nothing is changed then). Not streamed.
    ImportState { document: String },
}

impl SystemRequest {
    fn permission(&self) -> Permission {
        match self {
            Self::Health | Self::WatchHealth { .. } | Self::Whoami => Permission::SystemRead,
            Self::Reload | Self::Shutdown | Self::ExportState | Self::ImportState { .. } => {
                Permission::SystemManage
            }
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Health | Self::WatchHealth { .. } => "system health",
            Self::Whoami => "system whoami",
            Self::Reload => "system reload",
            Self::Shutdown => "system shutdown",
            Self::ExportState => "system export-state",
            Self::ImportState { .. } => "system import-state",
        }
    }
}

/// Final results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Health(HealthReport),
    Identity(Identity),
    Reloaded(ReloadReport),
    ShuttingDown,
    /// A streamed request ended normally.
    Done,
    Repo(RepoInfo),
    Repos(Vec<RepoInfo>),
    KeyExport(KeyExport),
    Check(CheckResult),
    Backup(BackupResult),
    Restore(RestoreResult),
    Snapshots(Vec<SnapshotInfo>),
    Forget(ForgetResult),
    RebuildIndex(RebuildResult),
    Submitted(Submitted),
    Job(Box<JobInfo>),
    Jobs(Vec<JobInfo>),
    QueueStatus(QueueStatus),
    Workers(u32),
    /// How many jobs were deleted.
    Purged(u64),
    /// What a noop job returns.
    Noop {
        slept_ms: u64,
    },
    Source(Box<SourceInfo>),
    Sources(Vec<SourceInfo>),
    /// The export document (JSON text).
    StateExport(String),
    StateImported(ImportReport),
    /// `queue history`: finished jobs, newest first.
    History(Vec<HistoryEntry>),
    /// What `backup --dry-run` found; nothing was written.
    BackupDryRun(BackupDryRunResult),
    /// `repo remove`: the registration that was removed.
    RepoRemoved(RepoInfo),
    RepoDetails(Box<RepoDetails>),
    KeyChanged(KeyChange),
    KeyRotated(KeyRotation),
    KeyList(Box<KeyListing>),
    KeyRemoved(KeyRemoval),
    Stats(Box<StatsResult>),
    Security(SecurityResponse),
    /// `security audit`: matching entries, oldest first.
    AuditEntries(Vec<AuditEntry>),
    AuditVerify(Box<VerifyReport>),
    /// `security alerts`: newest first.
    SecurityAlerts(Vec<AlertInfo>),
    /// `security alerts ack`: the alert as acknowledged.
    SecurityAlert(Box<AlertInfo>),
    Unlocked(Unlocked),
    Compliance(Box<ComplianceReport>),
    SecurityReport(Box<SecurityReport>),
    Reencrypt(Box<ReencryptResult>),
    /// What a `repo migrate` job did (`retired` is empty, `below` 0).
    Migrate(Box<ReencryptResult>),
    /// `security encrypt`: what was sealed.
    Encrypted(FileCryptResult),
    /// `security decrypt`: what was opened.
    Decrypted(FileCryptResult),
    /// `source show`.
    SourceDetail(Box<SourceDetail>),
    /// What a `repo prune` job did.
    Prune(PruneSummary),
    /// What a `repo compact` job did.
    Compact(CompactSummary),
    PerfCurrent(Box<PerfCurrent>),
    PerfReport(Box<PerfReport>),
    /// `perf metrics`: samples, oldest first.
    PerfSamples(Vec<PerfSample>),
    /// `perf bottlenecks`: newest first.
    Bottlenecks(Vec<Bottleneck>),
    /// `perf history`: newest first.
    TuningHistory(Vec<TuningChange>),
    /// `perf optimize` and `perf auto`.
    Optimized(Box<Optimized>),
    SyncPair(Box<SyncInfo>),
    SyncPairs(Vec<SyncInfo>),
    /// What a `sync` job did.
    Sync(Box<SyncResult>),
    /// `sync history`: newest first.
    SyncHistory(Vec<SyncRun>),
    SyncConflicts(Vec<SyncConflict>),
    /// What a `replicate` job did.
    Replicate(Box<ReplicateResult>),
    /// `repo replicate add` and `remove`: the replication as stored (removed).
    Replication(Box<ReplicationInfo>),
    /// `repo replicate list`.
    Replications(Vec<ReplicationInfo>),
    /// `recovery fitness`: best first.
    Fitness(Vec<FitnessReport>),
    Selection(Box<Selection>),
    /// `recovery plan` and `status`, and what a `recovery` job left.
    RecoveryPlan(Box<PlanInfo>),
    /// `recovery list`: newest first.
    RecoveryPlans(Vec<PlanInfo>),
    /// What a `drill` job did.
    Drill(Box<DrillResult>),
    /// `recovery objectives`.
    Objectives(Box<Objectives>),
    /// `ls`.
    Listing(Box<Listing>),
    /// `find`.
    Found(Box<Found>),
    /// `diff`.
    Diff(Box<DiffResult>),
    /// `cat`: the end of the content frames.
    Cat(CatResult),
    /// `analytics predict`: one per source.
    Predictions(Vec<Prediction>),
    Backtest(Box<BacktestReport>),
    Estimates(Vec<Estimate>),
    /// `analytics anomalies`: newest first.
    Anomalies(Vec<AnomalyInfo>),
    Trends(Vec<TrendInfo>),
    Risk(Box<RiskReport>),
    Recommendations(Vec<Recommendation>),
    AnalyticsReport(Box<AnalyticsReport>),
    /// `analytics hold list`.
    Holds(Vec<HoldInfo>),
    /// `analytics hold release`: the hold as it was.
    HoldReleased(Box<HoldInfo>),
}

/// What an import did, entry by entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    pub added: Vec<ImportItem>,
    pub skipped: Vec<ImportItem>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportItem {
    /// `repository` or `source`.
    pub kind: String,
    pub name: String,
    /// Why it was skipped (already there, invalid); for an added entry, a caveat or nothing.
    pub reason: Option<String>,
}

/// Intermediate frames of streamed responses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Progress {
    Health(HealthReport),
    Operation(OperationProgress),
    Event(JobEvent),
    /// `security audit --follow`: one entry.
    Audit(Box<AuditEntry>),
    /// A suspicious-activity alert, on `events` for callers holding `security.read`.
    Alert(AlertInfo),
    /// `cat`: the next piece of the file's content (at most [`CAT_CHUNK`] bytes), in order.
    Content(Vec<u8>),
    /// An anomaly in a source's backups, on `events` for callers holding `system.read`.
    Anomaly(Box<AnomalyInfo>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
    /// Serving, but something needs attention; `HealthReport::notes` says what.
    Degraded,
    /// Shutting down; no new work is accepted.
    Stopping,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunMode {
    /// Started as root: system paths, socket shared with a group.
    System,
    /// Started as an ordinary user: XDG paths, socket private to that user.
    User,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    pub status: HealthStatus,
    pub version: String,
    pub protocol_version: u32,
    pub uptime_secs: u64,
    pub pid: u32,
    pub mode: RunMode,
    /// Display form of the socket path (lossy for non-UTF-8 paths).
    pub socket: String,
    pub state_dir: String,
    pub config_file: Option<String>,
    /// Whether the listening socket came from systemd socket activation.
    pub socket_activated: bool,
    pub connections: u32,
    pub notes: Vec<String>,
    /// Per source: last backups, schedule, retention and RPO.
    pub sources: Vec<SourceHealth>,
    /// Per repository: prune and verification schedules.
    pub repositories: Vec<RepoMaintenance>,
    /// The health score and what lowered it.
    pub score: HealthScore,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    pub config_file: Option<String>,
    /// Keys whose new values took effect.
    pub applied: Vec<String>,
    /// Keys that changed but only take effect after a restart.
    pub restart_required: Vec<String>,
}
