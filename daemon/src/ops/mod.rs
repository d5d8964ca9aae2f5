//! Operations: what each job kind is and does, one file per kind. An [`Operation`] names its
//! arguments (the protocol request), the repository it claims and how, its timeout key, the
//! permission submitting it needs, how a non-admin caller sees it, and its run on a blocking
//! thread.
//!
//! The queue and the server know kinds only through the functions [`register!`] generates
//! below: adding a kind is its wire variant in `common` plus one file here and one line in the
//! list. Operations run on the worker's blocking thread and stop at the engine's next safe
//! point once `cancel` fires; they never see a socket or the queue.

mod backup;
mod check;
mod drill;
mod forget;
mod migrate;
mod noop;
mod prune;
mod rebuild_index;
mod recovery;
mod reencrypt;
mod replicate;
pub mod repos;
mod restore;
mod sync;
pub mod view;

use crate::engine::progress::Progress;
use crate::error::Error;
use crate::repo::registry::Registry;
use crate::security::fsid::FsIdentity;
use backupd_common::protocol::{ActingUser, Identity, JobKind, Permission, Response};
pub use drill::DrillHandles;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What a job holds on a repository while it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub repo: String,
    pub exclusive: bool,
}

impl Claim {
    /// A claim on the repository named in a request (pinned at submission; empty: the default).
    pub fn on(repo: &Option<String>, exclusive: bool) -> Self {
        Self {
            repo: repo.clone().unwrap_or_default(),
            exclusive,
        }
    }

    pub fn conflicts(&self, other: &Claim) -> bool {
        self.repo == other.repo && (self.exclusive || other.exclusive)
    }
}

/// The handles an operation may use: built once by the daemon, shared by every run.
#[derive(Clone)]
pub struct Env {
    /// Named repositories (blocking API; operations run on blocking threads).
    pub repos: Arc<Registry>,
    /// Never backed up: the daemon's own state.
    pub state_dir: PathBuf,
    /// The tuner's values: background jobs read them when they start.
    pub tuning: crate::perf::Tuning,
    /// `[sync] bwlimit`: one bucket shared by every transfer under it.
    pub bandwidth: crate::throttle::Bucket,
    /// The sync pairs' store (`None` where no sync service runs: queue unit tests).
    pub sync: Option<crate::sync::Shared>,
    /// Where replication jobs record how they ended (`None` in tests of the queue alone).
    pub replications: Option<Arc<crate::replication::Replications>>,
    /// Recovery plans (`None` where no recovery service runs: queue unit tests).
    pub recovery: Option<Arc<crate::recovery::Recovery>>,
    /// What drills read and record (`None` in tests of the queue alone).
    pub drill: Option<DrillHandles>,
    /// Retention holds forget respects (`None` in tests of the queue alone).
    pub analytics: Option<Arc<crate::analytics::Analytics>>,
}

/// One attempt of a job, as its operation sees it.
pub struct Run<'a> {
    pub env: &'a Env,
    /// The job this attempt belongs to.
    pub job: u64,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The user whose file-system rights the job's work on files runs with (`None`: the
    /// daemon's own). Operations that touch files pass it to the engine as an
    /// [`FsIdentity`](crate::security::fsid::FsIdentity) ([`Run::identity`]).
    pub acts_as: Option<ActingUser>,
    pub progress: &'a Progress,
    pub cancel: &'a CancellationToken,
}

impl Run<'_> {
    /// The identity the job's file-system work takes on, looked up now (a user's groups as
    /// they are when the job runs). A user the job acts for and cannot be looked up fails the
    /// job; it never runs with the daemon's rights instead.
    pub fn identity(&self) -> Result<Option<Arc<FsIdentity>>, Error> {
        self.acts_as
            .map(|user| FsIdentity::resolve(user).map(Arc::new))
            .transpose()
            .map_err(|e| crate::engine::EngineError::from(e).into())
    }
}

/// One job kind.
pub trait Operation {
    /// The protocol request carrying the kind's arguments.
    type Args;
    /// The key of its timeout in `queue.timeouts` (also its name in logs and events).
    const TIMEOUT_KEY: &'static str;
    /// What submitting it needs.
    const PERMISSION: Permission;
    /// Whether an equal queued job absorbs a new submission instead of queuing a second one.
    const COALESCES: bool = false;
    /// For a kind that works on files the submitter names: the permission that lets it run
    /// with the daemon's rights. A submitter without it gets a job acting for them
    /// ([`acts_as`]). `None`: the kind touches only repositories.
    const ANY: Option<Permission> = None;

    /// The repository it holds while it runs, and whether it holds it alone.
    fn claim(args: &Self::Args) -> Option<Claim>;

    /// Empties what a non-admin caller must not read: paths, targets, free text.
    fn redact(args: &mut Self::Args);

    /// Checks at submission what can be checked before the job exists (snapshot ids, paths,
    /// globs), so a typo is refused at once instead of becoming a dead letter. Blocking. Only
    /// errors classed `InvalidArgument` or `NotFound` refuse the job (see [`validate`]).
    fn validate(_args: &Self::Args, _repos: &Registry) -> Result<(), Error> {
        Ok(())
    }

    fn run(args: Self::Args, run: &Run<'_>) -> Result<Response, Error>;
}

/// The registration: one line per kind, wire variant => operation. Generates the dispatch
/// functions the queue and the server call.
macro_rules! register {
    ($($variant:ident => $op:ty),* $(,)?) => {
        /// The repository `kind` holds while it runs.
        pub fn claim(kind: &JobKind) -> Option<Claim> {
            match kind {
                $(JobKind::$variant(a) => <$op>::claim(a),)*
            }
        }

        /// The permission submitting `kind` needs.
        pub fn permission(kind: &JobKind) -> Permission {
            match kind {
                $(JobKind::$variant(_) => <$op>::PERMISSION,)*
            }
        }

        /// The key of `kind`'s timeout in `queue.timeouts`.
        pub fn timeout_key(kind: &JobKind) -> &'static str {
            match kind {
                $(JobKind::$variant(_) => <$op>::TIMEOUT_KEY,)*
            }
        }

        /// Whether submissions of `kind` may merge into an equal queued job.
        pub fn coalesces(kind: &JobKind) -> bool {
            match kind {
                $(JobKind::$variant(_) => <$op>::COALESCES,)*
            }
        }

        /// The permission that lets `kind` run with the daemon's rights, if it works on files.
        pub fn any_permission(kind: &JobKind) -> Option<Permission> {
            match kind {
                $(JobKind::$variant(_) => <$op>::ANY,)*
            }
        }

        /// `kind` as a non-admin caller may see it.
        pub fn redact(kind: &mut JobKind) {
            match kind {
                $(JobKind::$variant(a) => <$op>::redact(a),)*
            }
        }

        fn validate_kind(kind: &JobKind, repos: &Registry) -> Result<(), Error> {
            match kind {
                $(JobKind::$variant(a) => <$op>::validate(a, repos),)*
            }
        }

        /// Runs one attempt of a job (blocking).
        pub fn run(kind: JobKind, run: &Run<'_>) -> Result<Response, Error> {
            match kind {
                $(JobKind::$variant(a) => <$op>::run(a, run),)*
            }
        }
    };
}

/// Checks a job's arguments before it is queued (blocking). A mistake in the request (an
/// unknown snapshot, a missing path, a bad glob) refuses it with [`Error::Refused`]. Anything
/// else (an unreachable repository, a busy lock) says nothing about the request: the job is
/// queued and its run meets the problem with retries.
pub fn validate(kind: &JobKind, repos: &Registry) -> Result<(), Error> {
    match validate_kind(kind, repos).map_err(|e| refused(command(kind), e)) {
        Err(e @ Error::Refused { .. }) => Err(e),
        Err(e) => {
            tracing::debug!(kind = kind.name(), error = %e, "submission not validated; queued anyway");
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

/// `error`, met while submitting with `command`, as a refusal when it is the request's fault
/// (`InvalidArgument`, `NotFound`: an unknown repository or snapshot, a bad path or glob).
pub fn refused(command: &'static str, error: Error) -> Error {
    use crate::error::Classify;
    use backupd_common::error::ErrorCode;
    if matches!(
        error.class().code,
        ErrorCode::InvalidArgument | ErrorCode::NotFound
    ) {
        Error::Refused {
            command,
            source: Box::new(error),
        }
    } else {
        error
    }
}

/// Whom a job of `kind` submitted by `identity` acts for: the submitter itself when the kind
/// works on files and `holds_any` says the submitter lacks the kind's `*.any` permission;
/// otherwise nobody (the daemon's own rights). Decided here, from the caller's credentials and
/// permissions alone: nothing in the request can change it.
pub fn acts_as(
    kind: &JobKind,
    identity: &Identity,
    holds_any: impl FnOnce(Permission) -> bool,
) -> Option<ActingUser> {
    let any = any_permission(kind)?;
    (!holds_any(any)).then_some(ActingUser {
        uid: identity.uid,
        gid: identity.gid,
    })
}

/// The `backupctl` command that submits `kind`, for messages that name what the user typed
/// (every kind can also be submitted as `queue add KIND`).
pub fn command(kind: &JobKind) -> &'static str {
    match kind {
        JobKind::Backup(_) => "backup",
        JobKind::Restore(_) => "restore",
        JobKind::Forget(_) => "forget",
        JobKind::Check(_) => "repo check",
        JobKind::RebuildIndex(_) => "repo rebuild-index",
        JobKind::Noop(_) => "queue add noop",
        JobKind::Reencrypt(_) => "repo key reencrypt",
        JobKind::Migrate(_) => "repo migrate",
        JobKind::Prune(r) if r.compact_only => "repo compact",
        JobKind::Prune(_) => "repo prune",
        JobKind::Sync(_) => "sync run",
        JobKind::Replicate(_) => "repo replicate run",
        JobKind::Recovery(r) => match r.action {
            backupd_common::protocol::RecoveryAction::Run { .. } => "recovery run",
            backupd_common::protocol::RecoveryAction::Rollback => "recovery rollback",
            backupd_common::protocol::RecoveryAction::Commit => "recovery commit",
        },
        JobKind::Drill(_) => "recovery drill",
    }
}

register! {
    Backup => backup::Backup,
    Restore => restore::Restore,
    Check => check::Check,
    Forget => forget::Forget,
    RebuildIndex => rebuild_index::RebuildIndex,
    Noop => noop::Noop,
    Reencrypt => reencrypt::Reencrypt,
    Migrate => migrate::Migrate,
    Prune => prune::Prune,
    Sync => sync::Sync,
    Replicate => replicate::Replicate,
    Recovery => recovery::Recovery,
    Drill => drill::Drill,
}

#[cfg(test)]
mod tests {
    use super::*;
    use backupd_common::protocol::{
        BackupRequest, CheckRequest, DrillRequest, ForgetRequest, MigrateRequest, NoopRequest,
        PruneRequest, RebuildIndexRequest, ReencryptRequest, ReplicateRequest, RestoreRequest,
        SyncRunRequest,
    };

    fn kinds() -> Vec<JobKind> {
        let repo = Some("r".to_owned());
        vec![
            JobKind::Backup(BackupRequest {
                repo: repo.clone(),
                ..Default::default()
            }),
            JobKind::Restore(RestoreRequest {
                repo: repo.clone(),
                ..Default::default()
            }),
            JobKind::Check(CheckRequest {
                repo: repo.clone(),
                ..Default::default()
            }),
            JobKind::Forget(ForgetRequest {
                repo: repo.clone(),
                ..Default::default()
            }),
            JobKind::RebuildIndex(RebuildIndexRequest { repo: repo.clone() }),
            JobKind::Noop(NoopRequest::default()),
            JobKind::Reencrypt(ReencryptRequest {
                repo: repo.clone(),
                ..Default::default()
            }),
            JobKind::Migrate(MigrateRequest {
                repo: repo.clone(),
                to: 2,
            }),
            JobKind::Prune(PruneRequest {
                repo: repo.clone(),
                compact_only: false,
            }),
            JobKind::Sync(SyncRunRequest { pair: "p".into() }),
            JobKind::Replicate(ReplicateRequest {
                repo: repo.clone(),
                from: "src".into(),
                ..Default::default()
            }),
            JobKind::Recovery(backupd_common::protocol::RecoveryJobRequest {
                plan: "1".into(),
                ..Default::default()
            }),
            JobKind::Drill(DrillRequest {
                repo,
                source: Some("s".into()),
                sample_percent: Some(1.0),
            }),
        ]
    }

    #[test]
    fn timeout_keys_are_the_wire_names_and_have_a_config_slot() {
        for kind in kinds() {
            assert_eq!(timeout_key(&kind), kind.name());
            // Every key must be one `queue.timeouts` knows; an unknown key would silently
            // fall back to the global timeout.
            let mut timeouts = backupd_common::config::KindTimeouts::default();
            let probe = std::time::Duration::from_secs(7);
            set_timeout(&mut timeouts, timeout_key(&kind), probe);
            assert_eq!(
                timeouts.get(timeout_key(&kind)),
                Some(probe),
                "{}",
                kind.name()
            );
        }
        assert_eq!(kinds().len(), JobKind::NAMES.len());
    }

    fn set_timeout(
        t: &mut backupd_common::config::KindTimeouts,
        key: &str,
        d: std::time::Duration,
    ) {
        let table = serde_json::json!({ key: format!("{}s", d.as_secs()) });
        *t = serde_json::from_value(table).expect("timeouts table");
    }

    #[test]
    fn permissions_follow_what_the_kind_touches() {
        let got: Vec<_> = kinds().iter().map(permission).collect();
        use Permission::*;
        assert_eq!(
            got,
            vec![
                BackupOwn,
                RestoreOwn,
                RepoManage,
                SnapshotForget,
                RepoManage,
                QueueManage,
                RepoKey,
                RepoManage,
                SnapshotForget,
                SyncManage,
                RepoManage,
                RestoreAny,
                RepoManage
            ]
        );
    }

    #[test]
    fn writers_of_the_index_claim_their_repository_alone() {
        let claims: Vec<_> = kinds().iter().map(claim).collect();
        let exclusive = |c: &Option<Claim>| c.as_ref().map(|c| c.exclusive);
        assert_eq!(
            claims.iter().map(exclusive).collect::<Vec<_>>(),
            vec![
                Some(false),
                Some(false),
                Some(false),
                Some(true),
                Some(true),
                None,
                Some(true),
                Some(true),
                Some(true),
                Some(true),
                Some(true),
                Some(true),
                Some(false)
            ]
        );
        let dry = JobKind::Forget(ForgetRequest {
            dry_run: true,
            ..Default::default()
        });
        assert_eq!(claim(&dry).map(|c| c.exclusive), Some(false));
        assert!(claims[0].as_ref().is_some_and(|c| c.repo == "r"));
    }

    #[test]
    fn whom_a_job_acts_for_comes_from_the_callers_permissions_and_nothing_in_the_request() {
        let user = Identity {
            uid: 1000,
            gid: 100,
            pid: Some(1),
            role: Some(backupd_common::protocol::Role::User),
        };
        let own = Some(ActingUser {
            uid: 1000,
            gid: 100,
        });
        // Every field a client can set, set: the answer does not move.
        let forged = JobKind::Backup(BackupRequest {
            repo: Some("r".into()),
            paths: vec![b"/root".to_vec()],
            force: true,
            host: Some("root".into()),
            source: Some("etc".into()),
            ..Default::default()
        });
        assert_eq!(acts_as(&forged, &user, |_| false), own);
        let got: Vec<_> = kinds()
            .iter()
            .map(|k| acts_as(k, &user, |_| false))
            .collect();
        assert_eq!(
            got,
            vec![own, own, None, None, None, None, None, None, None, None, None, None, None]
        );
        // Holding the kind's `*.any` permission: the daemon's own rights.
        let asked = std::cell::RefCell::new(Vec::new());
        for kind in kinds() {
            assert_eq!(
                acts_as(&kind, &user, |p| {
                    asked.borrow_mut().push(p);
                    true
                }),
                None
            );
        }
        assert_eq!(
            asked.into_inner(),
            vec![Permission::BackupAny, Permission::RestoreAny]
        );
    }

    #[test]
    fn only_backups_reencryptions_prunes_and_replications_coalesce() {
        let got: Vec<_> = kinds().iter().map(coalesces).collect();
        assert_eq!(
            got,
            vec![
                true, false, false, false, false, false, true, false, true, false, true, false,
                false
            ]
        );
    }
}
