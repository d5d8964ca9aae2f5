//! One typed helper per request, so no command handles an unexpected response.

mod analytics;

use backupd_common::client::{ClientError, Connection, TrustedDaemon};
use backupd_common::protocol::{
    AlertInfo, AnomalyInfo, ComplianceReport, Framework, SecurityReport, Unlocked,
};
use backupd_common::protocol::{AuditEntry, AuditQuery, VerifyReport};
use backupd_common::protocol::{
    BrowseRequest, CatRequest, CatResult, DiffRequest, DiffResult, FindRequest, Found, Listing,
    LsRequest,
};
use backupd_common::protocol::{FileCryptRequest, FileCryptResult};
use backupd_common::protocol::{
    FitnessReport, FitnessRequest, PlanInfo, PlanRequest, RecoveryRequest, Selection,
};
use backupd_common::protocol::{
    HealthReport, HistoryEntry, HistoryQuery, Identity, ImportReport, JobEvent, JobId, JobInfo,
    JobSpec, KeyChange, KeyExport, OperationProgress, Progress, QueueRequest, QueueStatus,
    ReloadReport, RepoDetails, RepoInfo, RepoRequest, Request, Response, Role, Secret,
    SecurityRequest, SecurityResponse, SnapshotInfo, SnapshotsRequest, SourceDetail, SourceInfo,
    SourceRequest, StatsRequest, StatsResult, Submitted, SystemRequest,
};
use backupd_common::protocol::{InitReplicaRequest, ReplicationInfo, ReplicationSpec};
use backupd_common::protocol::{KeyListing, KeyRemoval, KeyRotation};
use backupd_common::protocol::{PerfCurrent, PerfRequest, PerfSample};
use std::ops::ControlFlow;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::time::Duration;

#[derive(Debug)]
pub struct Client {
    conn: Connection,
}

fn unexpected(response: Response) -> ClientError {
    ClientError::Unexpected(format!("{response:?}"))
}

impl Client {
    /// Connects to the daemon on `socket` if it runs as root, as the caller, or as `owner`
    /// (`--socket-owner`), and says hello.
    pub async fn connect(socket: &Path, owner: Option<u32>) -> Result<Self, ClientError> {
        let client = format!("backupctl {}", backupd_common::VERSION);
        let trusted = TrustedDaemon { also: owner };
        Ok(Self {
            conn: Connection::connect_trusting(socket, &client, trusted).await?,
        })
    }

    /// The role the daemon granted this connection at the handshake (`None`: every request
    /// is refused).
    pub fn role(&self) -> Option<Role> {
        self.conn.welcome().identity.role
    }

    pub async fn health(&mut self) -> Result<HealthReport, ClientError> {
        match self
            .conn
            .call(Request::System(SystemRequest::Health))
            .await?
        {
            Response::Health(h) => Ok(h),
            other => Err(unexpected(other)),
        }
    }

    /// Calls `each` with every streamed report until `count` reports (0 = forever).
    pub async fn watch_health(
        &mut self,
        interval: Duration,
        count: u32,
        mut each: impl FnMut(HealthReport),
    ) -> Result<(), ClientError> {
        let request = Request::System(SystemRequest::WatchHealth { interval, count });
        let done = self
            .conn
            .call_streaming(request, |p| {
                if let Progress::Health(h) = p {
                    each(h)
                }
            })
            .await?;
        match done {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    pub async fn whoami(&mut self) -> Result<Identity, ClientError> {
        match self
            .conn
            .call(Request::System(SystemRequest::Whoami))
            .await?
        {
            Response::Identity(i) => Ok(i),
            other => Err(unexpected(other)),
        }
    }

    /// The export document (JSON text).
    pub async fn export_state(&mut self) -> Result<String, ClientError> {
        match self
            .conn
            .call(Request::System(SystemRequest::ExportState))
            .await?
        {
            Response::StateExport(doc) => Ok(doc),
            other => Err(unexpected(other)),
        }
    }

    pub async fn import_state(&mut self, document: String) -> Result<ImportReport, ClientError> {
        match self
            .conn
            .call(Request::System(SystemRequest::ImportState { document }))
            .await?
        {
            Response::StateImported(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn reload(&mut self) -> Result<ReloadReport, ClientError> {
        match self
            .conn
            .call(Request::System(SystemRequest::Reload))
            .await?
        {
            Response::Reloaded(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn shutdown(&mut self) -> Result<(), ClientError> {
        match self
            .conn
            .call(Request::System(SystemRequest::Shutdown))
            .await?
        {
            Response::ShuttingDown => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    pub async fn repo_init(
        &mut self,
        name: String,
        path: Vec<u8>,
        password: Option<Secret>,
        credentials: Option<Secret>,
    ) -> Result<RepoInfo, ClientError> {
        let request = Request::Repo(RepoRequest::Init {
            name,
            path,
            password,
            credentials,
        });
        match self.conn.call(request).await? {
            Response::Repo(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn repo_init_replica(
        &mut self,
        request: InitReplicaRequest,
    ) -> Result<RepoInfo, ClientError> {
        match self
            .conn
            .call(Request::Repo(RepoRequest::InitReplica(request)))
            .await?
        {
            Response::Repo(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn replicate_add(
        &mut self,
        spec: ReplicationSpec,
    ) -> Result<ReplicationInfo, ClientError> {
        match self
            .conn
            .call(Request::Repo(RepoRequest::ReplicateAdd(spec)))
            .await?
        {
            Response::Replication(r) => Ok(*r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn recovery_fitness(
        &mut self,
        r: FitnessRequest,
    ) -> Result<Vec<FitnessReport>, ClientError> {
        match self
            .conn
            .call(Request::Recovery(RecoveryRequest::Fitness(r)))
            .await?
        {
            Response::Fitness(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn recovery_select(&mut self, r: FitnessRequest) -> Result<Selection, ClientError> {
        match self
            .conn
            .call(Request::Recovery(RecoveryRequest::Select(r)))
            .await?
        {
            Response::Selection(r) => Ok(*r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn recovery_plan(&mut self, r: PlanRequest) -> Result<PlanInfo, ClientError> {
        match self
            .conn
            .call(Request::Recovery(RecoveryRequest::Plan(Box::new(r))))
            .await?
        {
            Response::RecoveryPlan(p) => Ok(*p),
            other => Err(unexpected(other)),
        }
    }

    pub async fn recovery_status(&mut self, plan: String) -> Result<PlanInfo, ClientError> {
        match self
            .conn
            .call(Request::Recovery(RecoveryRequest::Status { plan }))
            .await?
        {
            Response::RecoveryPlan(p) => Ok(*p),
            other => Err(unexpected(other)),
        }
    }

    pub async fn recovery_list(&mut self) -> Result<Vec<PlanInfo>, ClientError> {
        match self
            .conn
            .call(Request::Recovery(RecoveryRequest::List))
            .await?
        {
            Response::RecoveryPlans(p) => Ok(p),
            other => Err(unexpected(other)),
        }
    }

    pub async fn replicate_list(&mut self) -> Result<Vec<ReplicationInfo>, ClientError> {
        match self
            .conn
            .call(Request::Repo(RepoRequest::ReplicateList))
            .await?
        {
            Response::Replications(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn replicate_remove(&mut self, to: String) -> Result<ReplicationInfo, ClientError> {
        match self
            .conn
            .call(Request::Repo(RepoRequest::ReplicateRemove { to }))
            .await?
        {
            Response::Replication(r) => Ok(*r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn repo_add(
        &mut self,
        name: String,
        path: Vec<u8>,
        password: Secret,
        credentials: Option<Secret>,
    ) -> Result<RepoInfo, ClientError> {
        let request = Request::Repo(RepoRequest::Add {
            name,
            path,
            password,
            credentials,
        });
        match self.conn.call(request).await? {
            Response::Repo(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn repo_list(&mut self) -> Result<Vec<RepoInfo>, ClientError> {
        match self.conn.call(Request::Repo(RepoRequest::List)).await? {
            Response::Repos(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn key_export(&mut self, name: String) -> Result<KeyExport, ClientError> {
        match self
            .conn
            .call(Request::Repo(RepoRequest::KeyExport { name }))
            .await?
        {
            Response::KeyExport(k) => Ok(k),
            other => Err(unexpected(other)),
        }
    }

    pub async fn repo_remove(&mut self, name: String) -> Result<RepoInfo, ClientError> {
        match self
            .conn
            .call(Request::Repo(RepoRequest::Remove { name }))
            .await?
        {
            Response::RepoRemoved(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn repo_info(&mut self, name: Option<String>) -> Result<RepoDetails, ClientError> {
        match self
            .conn
            .call(Request::Repo(RepoRequest::Info { name }))
            .await?
        {
            Response::RepoDetails(r) => Ok(*r),
            other => Err(unexpected(other)),
        }
    }

    /// `passwd`: replace the daemon's passphrase; else add a key for another one.
    pub async fn key_change(
        &mut self,
        name: Option<String>,
        password: Secret,
        passwd: bool,
    ) -> Result<KeyChange, ClientError> {
        let request = if passwd {
            RepoRequest::KeyPasswd { name, password }
        } else {
            RepoRequest::KeyAdd { name, password }
        };
        match self.conn.call(Request::Repo(request)).await? {
            Response::KeyChanged(k) => Ok(k),
            other => Err(unexpected(other)),
        }
    }

    pub async fn key_rotate(&mut self, name: Option<String>) -> Result<KeyRotation, ClientError> {
        match self
            .conn
            .call(Request::Repo(RepoRequest::KeyRotate { name }))
            .await?
        {
            Response::KeyRotated(k) => Ok(k),
            other => Err(unexpected(other)),
        }
    }

    pub async fn key_list(&mut self, name: Option<String>) -> Result<KeyListing, ClientError> {
        match self
            .conn
            .call(Request::Repo(RepoRequest::KeyList { name }))
            .await?
        {
            Response::KeyList(k) => Ok(*k),
            other => Err(unexpected(other)),
        }
    }

    pub async fn key_remove(
        &mut self,
        name: Option<String>,
        id: String,
    ) -> Result<KeyRemoval, ClientError> {
        match self
            .conn
            .call(Request::Repo(RepoRequest::KeyRemove { name, id }))
            .await?
        {
            Response::KeyRemoved(k) => Ok(k),
            other => Err(unexpected(other)),
        }
    }

    pub async fn stats(&mut self, request: StatsRequest) -> Result<StatsResult, ClientError> {
        match self
            .conn
            .call(Request::Repo(RepoRequest::Stats(request)))
            .await?
        {
            Response::Stats(s) => Ok(*s),
            other => Err(unexpected(other)),
        }
    }

    pub async fn snapshots(
        &mut self,
        request: SnapshotsRequest,
    ) -> Result<Vec<SnapshotInfo>, ClientError> {
        match self.conn.call(Request::Snapshots(request)).await? {
            Response::Snapshots(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    async fn queue(&mut self, request: QueueRequest) -> Result<Response, ClientError> {
        self.conn.call(Request::Queue(request)).await
    }

    pub async fn submit(&mut self, spec: JobSpec) -> Result<Submitted, ClientError> {
        match self.queue(QueueRequest::Submit(Box::new(spec))).await? {
            Response::Submitted(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    /// Follows a job to its end, calling `on_progress` while it runs and `on_event` for each of
    /// its transitions before the final one.
    pub async fn wait(
        &mut self,
        id: JobId,
        mut on_progress: impl FnMut(OperationProgress),
        mut on_event: impl FnMut(JobEvent),
    ) -> Result<JobInfo, ClientError> {
        let request = Request::Queue(QueueRequest::Wait { id });
        let done = self
            .conn
            .call_streaming(request, |p| match p {
                Progress::Operation(o) => on_progress(o),
                Progress::Event(e) => on_event(e),
                Progress::Health(_)
                | Progress::Audit(_)
                | Progress::Alert(_)
                | Progress::Anomaly(_)
                | Progress::Content(_) => {}
            })
            .await?;
        job(done)
    }

    pub async fn job(&mut self, id: JobId) -> Result<JobInfo, ClientError> {
        job(self.queue(QueueRequest::Job { id }).await?)
    }

    pub async fn cancel(&mut self, id: JobId) -> Result<JobInfo, ClientError> {
        job(self.queue(QueueRequest::Cancel { id }).await?)
    }

    pub async fn retry_dead_letter(&mut self, id: JobId) -> Result<JobInfo, ClientError> {
        job(self.queue(QueueRequest::RetryDeadLetter { id }).await?)
    }

    pub async fn queue_status(&mut self) -> Result<QueueStatus, ClientError> {
        match self.queue(QueueRequest::Status).await? {
            Response::QueueStatus(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    pub async fn dead_letters(&mut self) -> Result<Vec<JobInfo>, ClientError> {
        jobs(self.queue(QueueRequest::DeadLetters).await?)
    }

    pub async fn history(&mut self, query: HistoryQuery) -> Result<Vec<HistoryEntry>, ClientError> {
        match self.queue(QueueRequest::History(query)).await? {
            Response::History(entries) => Ok(entries),
            other => Err(unexpected(other)),
        }
    }

    pub async fn purge_dead_letters(&mut self) -> Result<u64, ClientError> {
        match self.queue(QueueRequest::PurgeDeadLetters).await? {
            Response::Purged(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    pub async fn workers(&mut self, count: Option<u32>) -> Result<u32, ClientError> {
        match self.queue(QueueRequest::Workers { count }).await? {
            Response::Workers(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    /// Calls `each` with every event until the stream ends (never, with `follow`), `alert`
    /// with every security alert and `anomaly` with every anomaly raised meanwhile.
    pub async fn events(
        &mut self,
        follow: bool,
        backlog: u32,
        mut each: impl FnMut(JobEvent),
        mut alert: impl FnMut(AlertInfo),
        mut anomaly: impl FnMut(AnomalyInfo),
    ) -> Result<(), ClientError> {
        let request = Request::Queue(QueueRequest::Events { follow, backlog });
        let done = self
            .conn
            .call_streaming(request, |p| match p {
                Progress::Event(e) => each(e),
                Progress::Alert(a) => alert(a),
                Progress::Anomaly(a) => anomaly(*a),
                Progress::Health(_)
                | Progress::Operation(_)
                | Progress::Audit(_)
                | Progress::Content(_) => {}
            })
            .await?;
        match done {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}

impl Client {
    /// `security audit`: matching entries, oldest first.
    pub async fn audit(&mut self, query: AuditQuery) -> Result<Vec<AuditEntry>, ClientError> {
        let request = Request::Security(SecurityRequest::Audit(query));
        match self.conn.call(request).await? {
            Response::AuditEntries(e) => Ok(e),
            other => Err(unexpected(other)),
        }
    }

    /// `security audit --follow`: calls `each` with every entry until the stream ends.
    pub async fn audit_follow(
        &mut self,
        query: AuditQuery,
        mut each: impl FnMut(AuditEntry),
    ) -> Result<(), ClientError> {
        let request = Request::Security(SecurityRequest::Audit(query));
        let done = self
            .conn
            .call_streaming(request, |p| {
                if let Progress::Audit(e) = p {
                    each(*e)
                }
            })
            .await?;
        match done {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    pub async fn audit_verify(&mut self) -> Result<VerifyReport, ClientError> {
        let request = Request::Security(SecurityRequest::AuditVerify);
        match self.conn.call(request).await? {
            Response::AuditVerify(r) => Ok(*r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn source(&mut self, request: SourceRequest) -> Result<SourceInfo, ClientError> {
        match self.conn.call(Request::Source(request)).await? {
            Response::Source(s) => Ok(*s),
            other => Err(unexpected(other)),
        }
    }

    pub async fn source_detail(&mut self, name: &str) -> Result<SourceDetail, ClientError> {
        let request = Request::Source(SourceRequest::Show {
            name: name.to_owned(),
        });
        match self.conn.call(request).await? {
            Response::SourceDetail(d) => Ok(*d),
            other => Err(unexpected(other)),
        }
    }

    /// A `sync` request; the command matches the reply.
    pub async fn sync(
        &mut self,
        request: backupd_common::protocol::SyncRequest,
    ) -> Result<Response, ClientError> {
        self.conn.call(Request::Sync(request)).await
    }

    pub async fn sources(&mut self) -> Result<Vec<SourceInfo>, ClientError> {
        match self.conn.call(Request::Source(SourceRequest::List)).await? {
            Response::Sources(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }
}

impl Client {
    /// A `security` request; the typed wrappers are beside the commands that send them.
    pub async fn security(
        &mut self,
        request: SecurityRequest,
    ) -> Result<SecurityResponse, ClientError> {
        match self.conn.call(Request::Security(request)).await? {
            Response::Security(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }
}

impl Client {
    /// A `perf` request; the command matches the reply.
    pub async fn perf(&mut self, request: PerfRequest) -> Result<Response, ClientError> {
        self.conn.call(Request::Perf(request)).await
    }

    // Typed reads for `backupctl dashboard`, which keeps their answers.
    pub async fn perf_current(&mut self) -> Result<PerfCurrent, ClientError> {
        match self.conn.call(Request::Perf(PerfRequest::Current)).await? {
            Response::PerfCurrent(c) => Ok(*c),
            other => Err(unexpected(other)),
        }
    }

    /// The samples of the last `since`, oldest first, thinned evenly to at most `max_points`.
    pub async fn perf_metrics(
        &mut self,
        since: Duration,
        max_points: u32,
    ) -> Result<Vec<PerfSample>, ClientError> {
        let request = Request::Perf(PerfRequest::Metrics {
            since_ms: u64::try_from(since.as_millis()).unwrap_or(u64::MAX),
            max_points,
        });
        match self.conn.call(request).await? {
            Response::PerfSamples(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }
}

/// `ls`, `find`, `diff`, `cat`.
impl Client {
    async fn browse(&mut self, request: BrowseRequest) -> Result<Response, ClientError> {
        self.conn.call(Request::Browse(request)).await
    }

    pub async fn ls(&mut self, request: LsRequest) -> Result<Listing, ClientError> {
        match self.browse(BrowseRequest::Ls(Box::new(request))).await? {
            Response::Listing(l) => Ok(*l),
            other => Err(unexpected(other)),
        }
    }

    pub async fn find(&mut self, request: FindRequest) -> Result<Found, ClientError> {
        match self.browse(BrowseRequest::Find(Box::new(request))).await? {
            Response::Found(f) => Ok(*f),
            other => Err(unexpected(other)),
        }
    }

    pub async fn diff(&mut self, request: DiffRequest) -> Result<DiffResult, ClientError> {
        match self.browse(BrowseRequest::Diff(Box::new(request))).await? {
            Response::Diff(d) => Ok(*d),
            other => Err(unexpected(other)),
        }
    }

    /// Hands each piece of the file to `each` in order; `Ok(None)` when `each` stopped (its
    /// `Break`), after which this client must be dropped.
    pub async fn cat(
        &mut self,
        request: CatRequest,
        mut each: impl FnMut(Vec<u8>) -> ControlFlow<()>,
    ) -> Result<Option<CatResult>, ClientError> {
        let reply = self
            .conn
            .call_streaming_until(
                Request::Browse(BrowseRequest::Cat(Box::new(request))),
                |p| match p {
                    Progress::Content(bytes) => each(bytes),
                    _ => ControlFlow::Continue(()),
                },
            )
            .await?;
        match reply {
            None => Ok(None),
            Some(Response::Cat(r)) => Ok(Some(r)),
            Some(other) => Err(unexpected(other)),
        }
    }
}

fn job(response: Response) -> Result<JobInfo, ClientError> {
    match response {
        Response::Job(j) => Ok(*j),
        other => Err(unexpected(other)),
    }
}

fn jobs(response: Response) -> Result<Vec<JobInfo>, ClientError> {
    match response {
        Response::Jobs(j) => Ok(j),
        other => Err(unexpected(other)),
    }
}

/// `security alerts`, `unlock`, `compliance`, `report`.
impl Client {
    async fn security_call(&mut self, request: SecurityRequest) -> Result<Response, ClientError> {
        self.conn.call(Request::Security(request)).await
    }

    pub async fn security_alerts(&mut self, all: bool) -> Result<Vec<AlertInfo>, ClientError> {
        match self.security_call(SecurityRequest::Alerts { all }).await? {
            Response::SecurityAlerts(a) => Ok(a),
            other => Err(unexpected(other)),
        }
    }

    pub async fn ack_alert(&mut self, id: u64) -> Result<AlertInfo, ClientError> {
        match self.security_call(SecurityRequest::AckAlert { id }).await? {
            Response::SecurityAlert(a) => Ok(*a),
            other => Err(unexpected(other)),
        }
    }

    pub async fn unlock(&mut self, uid: u32) -> Result<Unlocked, ClientError> {
        match self.security_call(SecurityRequest::Unlock { uid }).await? {
            Response::Unlocked(u) => Ok(u),
            other => Err(unexpected(other)),
        }
    }

    /// `recovery objectives`.
    pub async fn objectives(
        &mut self,
    ) -> Result<backupd_common::protocol::Objectives, ClientError> {
        match self
            .conn
            .call(Request::Recovery(
                backupd_common::protocol::RecoveryRequest::Objectives,
            ))
            .await?
        {
            Response::Objectives(o) => Ok(*o),
            other => Err(unexpected(other)),
        }
    }

    pub async fn compliance(
        &mut self,
        frameworks: Vec<Framework>,
    ) -> Result<ComplianceReport, ClientError> {
        match self
            .security_call(SecurityRequest::Compliance { frameworks })
            .await?
        {
            Response::Compliance(r) => Ok(*r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn security_report(&mut self, days: u32) -> Result<SecurityReport, ClientError> {
        match self.security_call(SecurityRequest::Report { days }).await? {
            Response::SecurityReport(r) => Ok(*r),
            other => Err(unexpected(other)),
        }
    }
}

/// `security encrypt|decrypt`.
impl Client {
    /// Seals (`encrypt`) or opens the open file `input` into `output` with repository `repo`'s
    /// keys; the daemon gets the two descriptors, never a path.
    pub async fn file_crypt(
        &mut self,
        encrypt: bool,
        repo: Option<String>,
        input: BorrowedFd<'_>,
        output: BorrowedFd<'_>,
        mut on_progress: impl FnMut(OperationProgress),
    ) -> Result<FileCryptResult, ClientError> {
        let files = FileCryptRequest {
            repo,
            ..FileCryptRequest::default()
        };
        let request = Request::Security(if encrypt {
            SecurityRequest::Encrypt(files)
        } else {
            SecurityRequest::Decrypt(files)
        });
        let reply = self
            .conn
            .call_passing(request, &[input, output], |p| {
                if let Progress::Operation(o) = p {
                    on_progress(o)
                }
            })
            .await?;
        match (encrypt, reply) {
            (true, Response::Encrypted(r)) | (false, Response::Decrypted(r)) => Ok(r),
            (_, other) => Err(unexpected(other)),
        }
    }
}
