//! Who is calling and what they may do. Identity comes from SO_PEERCRED; every request passes
//! [`check`] before it reaches a handler.

use crate::context::Process;
use crate::error::Error;
use backupd_common::protocol::{Identity, Permission, QueueRequest, Request, Role};
use tokio::net::UnixStream;

/// Reads the peer's credentials. `None` when the kernel will not say (never expected on Linux).
pub fn identify(process: &Process, stream: &UnixStream) -> Option<Identity> {
    let cred = stream.peer_cred().ok()?;
    let uid = cred.uid();
    Some(Identity {
        uid,
        gid: cred.gid(),
        pid: cred.pid(),
        role: role_of(process, uid),
    })
}

/// Until role management lands: root and the daemon's own uid administer, others observe.
fn role_of(process: &Process, uid: u32) -> Role {
    if uid == 0 || uid == process.daemon_uid {
        Role::Admin
    } else {
        Role::Observer
    }
}

/// What `request` needs: its own permission, or for a job submission the one the kind's
/// operation names.
pub fn needed(request: &Request) -> Permission {
    match request {
        Request::Queue(QueueRequest::Submit(spec)) => crate::ops::permission(&spec.kind),
        other => other.permission(),
    }
}

/// The one permission check every request passes.
pub fn check(identity: &Identity, request: &Request) -> Result<(), Error> {
    let needed = needed(request);
    if identity.role.grants(needed) {
        Ok(())
    } else {
        // A submission is named by the command that submits its kind (`backup`, `repo
        // check`), not by the generic request every such command sends.
        let name = match request {
            Request::Queue(QueueRequest::Submit(spec)) => crate::ops::command(&spec.kind),
            other => other.name(),
        };
        Err(Error::PermissionDenied {
            request: name,
            permission: needed.as_str(),
            role: identity.role.as_str(),
            uid: identity.uid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backupd_common::protocol::{
        CheckRequest, JobKind, JobOptions, JobSpec, RestoreRequest, SystemRequest,
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
        assert_eq!(needed(&restore), Permission::RestoreRun);
        let check = submit(JobKind::Check(CheckRequest::default()));
        assert_eq!(needed(&check), Permission::RepoAdmin);
        assert_eq!(
            needed(&Request::System(SystemRequest::Shutdown)),
            Permission::SystemAdmin
        );
        let observer = Identity {
            uid: 1000,
            gid: 1000,
            pid: None,
            role: Role::Observer,
        };
        assert!(check_denies(&observer, &restore));
        let message = super::check(&observer, &restore).map_err(|e| e.to_string());
        assert!(
            matches!(&message, Err(m) if m.contains("`restore` needs permission")),
            "{message:?}"
        );
    }

    fn check_denies(identity: &Identity, request: &Request) -> bool {
        matches!(
            check(identity, request),
            Err(Error::PermissionDenied { .. })
        )
    }
}
