//! One example of every kind of request, so that tests can ask of each what it needs
//! ([`super::authorize::needed`]), which repository it concerns and how it is named. A new
//! request variant does not compile until [`kind`] names it, and the test below fails until
//! [`every_kind`] holds an example of it: new requests are covered without anyone remembering.

use backupd_common::protocol::*;
use std::time::Duration;

/// A name per kind of request; exhaustive, without a catch-all, on purpose.
pub fn kind(r: &Request) -> &'static str {
    use QueueRequest as Q;
    use RepoRequest as R;
    use SecurityRequest as S;
    use SourceRequest as So;
    use SystemRequest as Sy;
    match r {
        Request::System(s) => match s {
            Sy::Health => "system.health",
            Sy::WatchHealth { .. } => "system.watch-health",
            Sy::Whoami => "system.whoami",
            Sy::Reload => "system.reload",
            Sy::Shutdown => "system.shutdown",
            Sy::ExportState => "system.export-state",
            Sy::ImportState { .. } => "system.import-state",
        },
        Request::Repo(r) => match r {
            R::Init { .. } => "repo.init",
            R::Add { .. } => "repo.add",
            R::List => "repo.list",
            R::KeyExport { .. } => "repo.key-export",
            R::Remove { .. } => "repo.remove",
            R::Info { .. } => "repo.info",
            R::KeyAdd { .. } => "repo.key-add",
            R::KeyPasswd { .. } => "repo.key-passwd",
            R::KeyRotate { .. } => "repo.key-rotate",
            R::KeyList { .. } => "repo.key-list",
            R::KeyRemove { .. } => "repo.key-remove",
            R::Stats(_) => "repo.stats",
            R::InitReplica(_) => "repo.init-replica",
            R::ReplicateAdd(_) => "repo.replicate-add",
            R::ReplicateList => "repo.replicate-list",
            R::ReplicateRemove { .. } => "repo.replicate-remove",
        },
        Request::Snapshots(_) => "snapshots",
        Request::Queue(q) => match q {
            Q::Submit(spec) => match spec.kind {
                JobKind::Backup(_) => "queue.submit.backup",
                JobKind::Restore(_) => "queue.submit.restore",
                JobKind::Check(_) => "queue.submit.check",
                JobKind::Forget(_) => "queue.submit.forget",
                JobKind::RebuildIndex(_) => "queue.submit.rebuild-index",
                JobKind::Noop(_) => "queue.submit.noop",
                JobKind::Reencrypt(_) => "queue.submit.reencrypt",
                JobKind::Migrate(_) => "queue.submit.migrate",
                JobKind::Prune(_) => "queue.submit.prune",
                JobKind::Sync(_) => "queue.submit.sync",
                JobKind::Replicate(_) => "queue.submit.replicate",
                JobKind::Recovery(_) => "queue.submit.recovery",
                JobKind::Drill(_) => "queue.submit.drill",
            },
            Q::Status => "queue.status",
            Q::Job { .. } => "queue.job",
            Q::Wait { .. } => "queue.wait",
            Q::Cancel { .. } => "queue.cancel",
            Q::DeadLetters => "queue.dead-letters",
            Q::RetryDeadLetter { .. } => "queue.retry",
            Q::PurgeDeadLetters => "queue.purge",
            Q::History(_) => "queue.history",
            Q::Workers { .. } => "queue.workers",
            Q::Events { .. } => "queue.events",
        },
        Request::Source(s) => match s {
            So::Add(_) => "source.add",
            So::List => "source.list",
            So::Set(_) => "source.set",
            So::Show { .. } => "source.show",
            So::Remove { .. } => "source.remove",
        },
        Request::Security(s) => match s {
            S::Grant { .. } => "security.grant",
            S::Revoke(_) => "security.revoke",
            S::Bindings => "security.bindings",
            S::Check { .. } => "security.check",
            S::Audit(_) => "security.audit",
            S::AuditVerify => "security.audit.verify",
            S::Alerts { .. } => "security.alerts",
            S::AckAlert { .. } => "security.alerts.ack",
            S::Unlock { .. } => "security.unlock",
            S::Compliance { .. } => "security.compliance",
            S::Report { .. } => "security.report",
            S::Encrypt(_) => "security.encrypt",
            S::Decrypt(_) => "security.decrypt",
        },
        Request::Perf(p) => match p {
            PerfRequest::Current => "perf.current",
            PerfRequest::Report { .. } => "perf.report",
            PerfRequest::Metrics { .. } => "perf.metrics",
            PerfRequest::Bottlenecks { .. } => "perf.bottlenecks",
            PerfRequest::History { .. } => "perf.history",
            PerfRequest::Optimize => "perf.optimize",
            PerfRequest::Auto { .. } => "perf.auto",
        },
        Request::Sync(s) => match s {
            SyncRequest::Add(_) => "sync.add",
            SyncRequest::List => "sync.list",
            SyncRequest::Show { .. } => "sync.show",
            SyncRequest::Remove { .. } => "sync.remove",
            SyncRequest::Pause { .. } => "sync.pause",
            SyncRequest::Resume { .. } => "sync.resume",
            SyncRequest::History { .. } => "sync.history",
            SyncRequest::Conflicts { .. } => "sync.conflicts",
            SyncRequest::Resolve { .. } => "sync.resolve",
        },
        Request::Recovery(r) => match r {
            RecoveryRequest::Objectives => "recovery.objectives",
            RecoveryRequest::Fitness(_) => "recovery.fitness",
            RecoveryRequest::Select(_) => "recovery.select",
            RecoveryRequest::Plan(_) => "recovery.plan",
            RecoveryRequest::Status { .. } => "recovery.status",
            RecoveryRequest::List => "recovery.list",
        },
        Request::Browse(b) => match b {
            BrowseRequest::Ls(_) => "browse.ls",
            BrowseRequest::Find(_) => "browse.find",
            BrowseRequest::Diff(_) => "browse.diff",
            BrowseRequest::Cat(_) => "browse.cat",
        },
        Request::Analytics(a) => match a {
            AnalyticsRequest::Predict { .. } => "analytics.predict",
            AnalyticsRequest::Backtest { .. } => "analytics.backtest",
            AnalyticsRequest::Estimate { .. } => "analytics.estimate",
            AnalyticsRequest::Anomalies { .. } => "analytics.anomalies",
            AnalyticsRequest::Trends { .. } => "analytics.trends",
            AnalyticsRequest::Risk { .. } => "analytics.risk",
            AnalyticsRequest::Recommendations => "analytics.recommendations",
            AnalyticsRequest::Report { .. } => "analytics.report",
            AnalyticsRequest::Holds => "analytics.holds",
            AnalyticsRequest::Release { .. } => "analytics.release",
        },
    }
}

fn submit(kind: JobKind) -> Request {
    Request::Queue(QueueRequest::Submit(Box::new(JobSpec {
        kind,
        options: JobOptions::default(),
    })))
}

/// One request of every kind [`kind`] names.
pub fn every_kind() -> Vec<Request> {
    use QueueRequest as Q;
    use RepoRequest as R;
    let secret = || Secret(b"pw".to_vec());
    let id: JobId = 1;
    vec![
        Request::System(SystemRequest::Health),
        Request::System(SystemRequest::WatchHealth {
            interval: Duration::from_secs(1),
            count: 1,
        }),
        Request::System(SystemRequest::Whoami),
        Request::System(SystemRequest::Reload),
        Request::System(SystemRequest::Shutdown),
        Request::System(SystemRequest::ExportState),
        Request::System(SystemRequest::ImportState {
            document: String::new(),
        }),
        Request::Repo(R::Init {
            name: "r".into(),
            path: b"/r".to_vec(),
            password: None,
            credentials: None,
        }),
        Request::Repo(R::Add {
            name: "r".into(),
            path: b"/r".to_vec(),
            password: secret(),
            credentials: None,
        }),
        Request::Repo(R::List),
        Request::Repo(R::KeyExport { name: "r".into() }),
        Request::Repo(R::Remove { name: "r".into() }),
        Request::Repo(R::Info { name: None }),
        Request::Repo(R::KeyAdd {
            name: None,
            password: secret(),
        }),
        Request::Repo(R::KeyPasswd {
            name: None,
            password: secret(),
        }),
        Request::Repo(R::KeyRotate { name: None }),
        Request::Repo(R::KeyList { name: None }),
        Request::Repo(R::KeyRemove {
            name: None,
            id: "0".into(),
        }),
        Request::Repo(R::Stats(StatsRequest::default())),
        Request::Repo(R::InitReplica(
            backupd_common::protocol::InitReplicaRequest {
                name: "r2".into(),
                path: b"/r2".to_vec(),
                password: None,
                source: "r".into(),
                own_data_key: false,
            },
        )),
        Request::Repo(R::ReplicateAdd(backupd_common::protocol::ReplicationSpec {
            from: "r".into(),
            to: "r2".into(),
            trigger: backupd_common::protocol::ReplicaTrigger::Manual,
            verify: false,
            mirror_forget: false,
            bwlimit: None,
            max_lag: None,
        })),
        Request::Repo(R::ReplicateList),
        Request::Repo(R::ReplicateRemove { to: "r2".into() }),
        Request::Snapshots(SnapshotsRequest::default()),
        submit(JobKind::Backup(BackupRequest::default())),
        submit(JobKind::Restore(RestoreRequest::default())),
        submit(JobKind::Check(CheckRequest::default())),
        submit(JobKind::Forget(ForgetRequest::default())),
        submit(JobKind::RebuildIndex(RebuildIndexRequest::default())),
        submit(JobKind::Noop(NoopRequest::default())),
        submit(JobKind::Reencrypt(ReencryptRequest::default())),
        submit(JobKind::Migrate(MigrateRequest::default())),
        submit(JobKind::Prune(PruneRequest::default())),
        submit(JobKind::Replicate(Default::default())),
        submit(JobKind::Recovery(Default::default())),
        Request::Recovery(RecoveryRequest::Fitness(Default::default())),
        Request::Recovery(RecoveryRequest::Select(Default::default())),
        Request::Recovery(RecoveryRequest::Plan(Default::default())),
        Request::Recovery(RecoveryRequest::Status { plan: "1".into() }),
        Request::Recovery(RecoveryRequest::List),
        Request::Queue(Q::Status),
        Request::Queue(Q::Job { id }),
        Request::Queue(Q::Wait { id }),
        Request::Queue(Q::Cancel { id }),
        Request::Queue(Q::DeadLetters),
        Request::Queue(Q::RetryDeadLetter { id }),
        Request::Queue(Q::PurgeDeadLetters),
        Request::Queue(Q::History(HistoryQuery::default())),
        Request::Queue(Q::Workers { count: None }),
        Request::Queue(Q::Events {
            follow: false,
            backlog: 0,
        }),
        Request::Source(SourceRequest::Add(Box::new(SourceSpec {
            name: "s".into(),
            path: b"/s".to_vec(),
            repo: None,
            excludes: Vec::new(),
            watch: true,
            debounce: Duration::from_secs(1),
            max_delay: Duration::from_secs(1),
            rescan_every: Duration::from_secs(1),
            policy: Default::default(),
        }))),
        Request::Source(SourceRequest::List),
        Request::Source(SourceRequest::Show { name: "s".into() }),
        Request::Source(SourceRequest::Remove { name: "s".into() }),
        Request::Security(SecurityRequest::Grant {
            role: Role::User,
            subject: Subject::Uid(1),
            repos: Vec::new(),
            expires: Expiry::Default,
        }),
        Request::Security(SecurityRequest::Revoke(RevokeTarget::Id("b1".into()))),
        Request::Security(SecurityRequest::Bindings),
        Request::Security(SecurityRequest::Check {
            uid: 1,
            permission: Permission::BackupOwn,
            repo: None,
        }),
        Request::Security(SecurityRequest::Audit(Default::default())),
        Request::Security(SecurityRequest::AuditVerify),
        Request::Security(SecurityRequest::Alerts { all: false }),
        Request::Security(SecurityRequest::AckAlert { id: 1 }),
        Request::Security(SecurityRequest::Unlock { uid: 1 }),
        Request::Security(SecurityRequest::Compliance {
            frameworks: Vec::new(),
        }),
        Request::Security(SecurityRequest::Report { days: 30 }),
        Request::Security(SecurityRequest::Encrypt(FileCryptRequest::default())),
        Request::Security(SecurityRequest::Decrypt(FileCryptRequest::default())),
        Request::Perf(PerfRequest::Current),
        Request::Perf(PerfRequest::Report { since_ms: 1 }),
        Request::Perf(PerfRequest::Metrics {
            since_ms: 1,
            max_points: 1,
        }),
        Request::Perf(PerfRequest::Bottlenecks { since_ms: 1 }),
        Request::Perf(PerfRequest::History { since_ms: 1 }),
        Request::Perf(PerfRequest::Optimize),
        Request::Perf(PerfRequest::Auto { on: true }),
        Request::Sync(SyncRequest::Add(Box::new(SyncSpec {
            name: "p".into(),
            src: b"/a".to_vec(),
            dst: b"/b".to_vec(),
            mode: Default::default(),
            strategy: Default::default(),
            delete: true,
            excludes: Vec::new(),
            watch: false,
            debounce: std::time::Duration::from_secs(1),
            schedule: None,
            every: None,
            bwlimit: None,
        }))),
        Request::Sync(SyncRequest::List),
        Request::Sync(SyncRequest::Show { name: "p".into() }),
        Request::Sync(SyncRequest::Remove { name: "p".into() }),
        Request::Sync(SyncRequest::Pause { name: "p".into() }),
        Request::Sync(SyncRequest::Resume { name: "p".into() }),
        Request::Sync(SyncRequest::History {
            name: "p".into(),
            limit: 1,
        }),
        Request::Sync(SyncRequest::Conflicts { name: "p".into() }),
        Request::Sync(SyncRequest::Resolve {
            name: "p".into(),
            path: b"f".to_vec(),
            take: Take::Local,
        }),
        submit(JobKind::Sync(SyncRunRequest { pair: "p".into() })),
        submit(JobKind::Drill(DrillRequest::default())),
        Request::Recovery(RecoveryRequest::Objectives),
        Request::Browse(BrowseRequest::Ls(Box::default())),
        Request::Browse(BrowseRequest::Find(Box::default())),
        Request::Browse(BrowseRequest::Diff(Box::default())),
        Request::Browse(BrowseRequest::Cat(Box::default())),
        Request::Analytics(AnalyticsRequest::Predict {
            source: None,
            days: 30,
        }),
        Request::Analytics(AnalyticsRequest::Backtest {
            source: None,
            days: 30,
        }),
        Request::Analytics(AnalyticsRequest::Estimate {
            source: None,
            bytes: None,
            files: None,
        }),
        Request::Analytics(AnalyticsRequest::Anomalies {
            since: None,
            source: None,
        }),
        Request::Analytics(AnalyticsRequest::Trends {
            source: None,
            days: 30,
        }),
        Request::Analytics(AnalyticsRequest::Risk { source: None }),
        Request::Analytics(AnalyticsRequest::Recommendations),
        Request::Analytics(AnalyticsRequest::Report { days: 30 }),
        Request::Analytics(AnalyticsRequest::Holds),
        Request::Analytics(AnalyticsRequest::Release { source: "s".into() }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::authorize::needed;
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn every_request_kind_needs_one_listed_permission_and_every_permission_is_needed() {
        let mut by_kind = BTreeMap::new();
        for r in every_kind() {
            let p = needed(&r);
            assert!(Permission::ALL.contains(&p), "{r:?}");
            assert!(
                by_kind.insert(kind(&r), p).is_none(),
                "two examples of {}",
                kind(&r)
            );
        }
        // Rights no request names: they lift acting with the requester's own file rights.
        let mut used: BTreeSet<Permission> = by_kind.values().copied().collect();
        used.extend([Permission::BackupAny, Permission::RestoreAny]);
        let unused: Vec<_> = Permission::ALL
            .iter()
            .filter(|p| !used.contains(p))
            .collect();
        assert!(
            unused.is_empty(),
            "permissions no request needs: {unused:?}"
        );
        // A few that must not drift.
        assert_eq!(by_kind["repo.key-export"], Permission::RepoKey);
        assert_eq!(by_kind["queue.submit.restore"], Permission::RestoreOwn);
        assert_eq!(by_kind["security.grant"], Permission::SecurityManage);
        assert_eq!(by_kind["security.check"], Permission::SecurityRead);
        assert_eq!(by_kind["security.encrypt"], Permission::RepoKey);
        assert_eq!(by_kind["security.decrypt"], Permission::RepoKey);
        // Names and metadata are a listing; content is a restore.
        assert_eq!(by_kind["browse.ls"], Permission::SnapshotList);
        assert_eq!(by_kind["browse.diff"], Permission::SnapshotList);
        assert_eq!(by_kind["browse.cat"], Permission::RestoreOwn);
    }
}
