//! The security service: who a caller is, whether a request is allowed, and what is recorded
//! about it. Every request passes [`Security::authorize`] in the connection before it reaches a
//! handler, and [`Security::after_request`] once it is answered; nothing else decides who may
//! do what.

pub mod authorize;
pub mod fsid;

use crate::context::{Process, SettingsHandle};
use crate::error::Error;
use backupd_common::error::ErrorReply;
use backupd_common::protocol::{Identity, Permission, Request, Response, Role};
use tokio::net::UnixStream;

/// The security service's handle, shared by the server and the handlers.
pub struct Security {
    process: Process,
    settings: SettingsHandle,
}

/// How a request ended, as the security service records it.
pub enum Outcome<'a> {
    /// Refused by [`Security::authorize`]; the reply sent.
    Denied(&'a ErrorReply),
    /// Answered: the final result sent (for a streamed request, its last reply).
    Answered(&'a Result<Response, ErrorReply>),
    /// A streamed reply that ended without a final result (client left, daemon stopping).
    Cut,
}

impl Security {
    pub fn new(process: Process, settings: SettingsHandle) -> Self {
        Self { process, settings }
    }

    /// Reads the peer's credentials. `None` when the kernel will not say (never expected on
    /// Linux).
    pub fn identify(&self, stream: &UnixStream) -> Option<Identity> {
        let cred = stream.peer_cred().ok()?;
        let uid = cred.uid();
        Some(Identity {
            uid,
            gid: cred.gid(),
            pid: cred.pid(),
            role: self.role_of(uid),
        })
    }

    /// The role `uid` holds now; `None` when it holds none.
    pub fn role_of(&self, uid: u32) -> Option<Role> {
        if uid == 0 {
            Some(Role::SuperAdmin)
        } else if uid == self.process.daemon_uid {
            Some(Role::Admin)
        } else {
            self.settings.get().config.security.default_role.role()
        }
    }

    /// The one permission check every request passes.
    pub fn authorize(&self, identity: &Identity, request: &Request) -> Result<(), Error> {
        let role = self.role_of(identity.uid);
        authorize::check(identity.uid, role, request)
    }

    /// Whether `identity` holds `permission` (for `repo`, when the question is about one):
    /// for the rights that no request names, such as acting as root (`backup.any`).
    pub fn holds(&self, identity: &Identity, permission: Permission, _repo: Option<&str>) -> bool {
        self.role_of(identity.uid)
            .is_some_and(|role| role.grants(permission))
    }

    /// Records how a request ended.
    pub fn after_request(&self, _identity: &Identity, _request: &Request, _outcome: Outcome<'_>) {}

    /// Records a connection whose handshake failed (`reason` is what the client was told).
    pub fn handshake_failed(&self, _identity: &Identity, _reason: &str) {}
}

/// Whether `role` administers the daemon: exempt from per-uid connection caps and served large
/// frames.
pub fn administers(role: Option<Role>) -> bool {
    matches!(role, Some(Role::SuperAdmin | Role::Admin))
}
