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
        Err(Error::PermissionDenied {
            request: request.name(),
            permission: needed.as_str(),
            role: identity.role.as_str(),
            uid: identity.uid,
        })
    }
}
