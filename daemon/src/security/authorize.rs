//! Which permission a request needs, which repository it concerns, and whether what the caller
//! holds grants it.

use crate::error::Error;
use backupd_common::protocol::{
    GrantSource, Permission, QueueRequest, RecoveryRequest, RepoRequest, Request, SecurityRequest,
    SourceRequest,
};

/// The repository a request that names none concerns, when it concerns one.
pub const DEFAULT_REPO: &str = crate::repo::registry::DEFAULT_NAME;

/// What `request` needs: its own permission, or for a job submission the one the kind's
/// operation names.
pub fn needed(request: &Request) -> Permission {
    match request {
        Request::Queue(QueueRequest::Submit(spec)) => crate::ops::permission(&spec.kind),
        other => other.permission(),
    }
}

/// The repository `request` is about, which decides whether a repo-scoped binding covers it:
/// the one it names, the default repository when it works on a repository without naming one,
/// `None` when it concerns no single repository (health, the queue, lists, security).
pub fn repository(request: &Request) -> Option<String> {
    let named = |name: Option<&str>| Some(name.unwrap_or(DEFAULT_REPO).to_owned());
    match request {
        Request::Repo(r) => match r {
            RepoRequest::Init { name, .. }
            | RepoRequest::Add { name, .. }
            | RepoRequest::KeyExport { name }
            | RepoRequest::Remove { name } => Some(name.clone()),
            RepoRequest::Info { name }
            | RepoRequest::KeyAdd { name, .. }
            | RepoRequest::KeyPasswd { name, .. }
            | RepoRequest::KeyRotate { name }
            | RepoRequest::KeyList { name }
            | RepoRequest::KeyRemove { name, .. } => named(name.as_deref()),
            RepoRequest::Stats(s) => named(s.repo.as_deref()),
            // Replication reads one repository and writes another: a binding scoped to
            // either alone does not cover it.
            RepoRequest::List
            | RepoRequest::InitReplica(_)
            | RepoRequest::ReplicateAdd(_)
            | RepoRequest::ReplicateList
            | RepoRequest::ReplicateRemove { .. } => None,
        },
        Request::Snapshots(s) => named(s.repo.as_deref()),
        Request::Queue(QueueRequest::Submit(spec))
            if matches!(spec.kind, backupd_common::protocol::JobKind::Replicate(_)) =>
        {
            None
        }
        Request::Queue(QueueRequest::Submit(spec)) => spec.kind.repo().and_then(named),
        Request::Source(SourceRequest::Add(spec)) => named(spec.repo.as_deref()),
        Request::Security(SecurityRequest::Encrypt(f) | SecurityRequest::Decrypt(f)) => {
            named(f.repo.as_deref())
        }
        Request::Browse(b) => named(b.repo()),
        Request::System(_)
        | Request::Queue(_)
        | Request::Source(_)
        | Request::Security(_)
        | Request::Perf(_)
        | Request::Sync(_)
        | Request::Analytics(_) => None,
        Request::Recovery(RecoveryRequest::Fitness(f) | RecoveryRequest::Select(f)) => {
            named(f.repo.as_deref())
        }
        Request::Recovery(RecoveryRequest::Plan(p)) => named(p.repo.as_deref()),
        Request::Recovery(_) => None,
    }
}

/// The command as users type it: a submission is named by the command that submits its kind
/// (`backup`, `repo check`), not by the generic request every such command sends.
pub fn command(request: &Request) -> &'static str {
    match request {
        Request::Queue(QueueRequest::Submit(spec)) => crate::ops::command(&spec.kind),
        other => other.name(),
    }
}

/// Whether `held` (what `uid` holds for this request's repository, see
/// [`super::bindings::resolve::sources`]) grants what `request` needs.
pub fn check(uid: u32, held: &[GrantSource], request: &Request) -> Result<(), Error> {
    let needed = needed(request);
    if held.iter().any(|s| s.role().grants(needed)) {
        return Ok(());
    }
    Err(Error::PermissionDenied {
        request: command(request),
        permission: needed.as_str(),
        held: describe(held),
        uid,
    })
}

/// `user on home (binding b3), viewer (security.default_role)`, or `no role`.
pub fn describe(held: &[GrantSource]) -> String {
    if held.is_empty() {
        return "no role".into();
    }
    let parts: Vec<String> = held
        .iter()
        .map(|s| match s {
            GrantSource::Binding(b) => format!("{} (binding {})", b.describe(), b.id),
            GrantSource::Root => "super-admin (root)".into(),
            GrantSource::DaemonUser => "admin (the daemon's own uid)".into(),
            GrantSource::DefaultRole(r) => format!("{r} (security.default_role)"),
        })
        .collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use backupd_common::protocol::{
        CheckRequest, JobKind, JobOptions, JobSpec, RestoreRequest, Role, SystemRequest,
    };

    fn submit(kind: JobKind) -> Request {
        Request::Queue(QueueRequest::Submit(Box::new(JobSpec {
            kind,
            options: JobOptions::default(),
        })))
    }

    #[test]
    fn a_submission_needs_what_its_kinds_operation_names() {
        let restore = submit(JobKind::Restore(RestoreRequest::default()));
        assert_eq!(needed(&restore), Permission::RestoreOwn);
        let check = submit(JobKind::Check(CheckRequest::default()));
        assert_eq!(needed(&check), Permission::RepoManage);
        assert_eq!(
            needed(&Request::System(SystemRequest::Shutdown)),
            Permission::SystemManage
        );
        let viewer = [GrantSource::DefaultRole(Role::Viewer)];
        assert!(matches!(
            super::check(1000, &viewer, &restore),
            Err(Error::PermissionDenied { .. })
        ));
        assert!(super::check(1000, &[GrantSource::DefaultRole(Role::User)], &restore).is_ok());
        let message = super::check(1000, &viewer, &restore).map_err(|e| e.to_string());
        assert!(
            matches!(&message, Err(m) if m.contains("`restore` needs permission `restore.own`")
                && m.contains("viewer (security.default_role)")
                && m.contains("uid 1000")
                && m.contains("backupctl security grant")),
            "{message:?}"
        );
    }

    #[test]
    fn a_request_without_a_repository_concerns_the_default_one_when_it_works_on_one() {
        assert_eq!(
            repository(&submit(JobKind::Restore(RestoreRequest::default()))).as_deref(),
            Some(DEFAULT_REPO)
        );
        assert_eq!(repository(&Request::Repo(RepoRequest::List)), None);
        assert_eq!(
            repository(&Request::Repo(RepoRequest::KeyExport { name: "x".into() })).as_deref(),
            Some("x")
        );
    }
}
