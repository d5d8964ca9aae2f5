//! Which permission a request needs and whether a role grants it.

use crate::error::Error;
use backupd_common::protocol::{Permission, QueueRequest, Request, Role};

/// What `request` needs: its own permission, or for a job submission the one the kind's
/// operation names.
pub fn needed(request: &Request) -> Permission {
    match request {
        Request::Queue(QueueRequest::Submit(spec)) => crate::ops::permission(&spec.kind),
        other => other.permission(),
    }
}

/// Whether `role` (held by `uid`) may send `request`.
pub fn check(uid: u32, role: Option<Role>, request: &Request) -> Result<(), Error> {
    let needed = needed(request);
    if role.is_some_and(|role| role.grants(needed)) {
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
            role: role.map_or("none", Role::as_str),
            uid,
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
        assert_eq!(needed(&restore), Permission::RestoreOwn);
        let check = submit(JobKind::Check(CheckRequest::default()));
        assert_eq!(needed(&check), Permission::RepoManage);
        assert_eq!(
            needed(&Request::System(SystemRequest::Shutdown)),
            Permission::SystemManage
        );
        assert!(matches!(
            super::check(1000, Some(Role::Viewer), &restore),
            Err(Error::PermissionDenied { .. })
        ));
        assert!(super::check(1000, Some(Role::User), &restore).is_ok());
        let message = super::check(1000, Some(Role::Viewer), &restore).map_err(|e| e.to_string());
        assert!(
            matches!(&message, Err(m) if m.contains("`restore` needs permission `restore.own`")),
            "{message:?}"
        );
    }
}
