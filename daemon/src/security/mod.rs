//! The security service: who a caller is, whether a request is allowed, and what is recorded
//! about it. Every request passes [`Security::authorize`] in the connection before it reaches a
//! handler, and [`Security::after_request`] once it is answered; nothing else decides who may
//! do what. Roles come from [`bindings`], resolved per request.

pub mod audit;
pub mod authorize;
pub mod bindings;
pub mod catalogue;
pub mod compliance;
pub mod detect;
pub mod file_crypt;
pub mod fsid;
pub mod key_rotation;
pub mod report;

use crate::context::{Process, SettingsHandle};
use crate::error::Error;
use crate::state::{State, StateError};
use backupd_common::error::ErrorReply;
use backupd_common::protocol::{
    BindingInfo, GrantSource, Identity, Permission, Request, Response, Role,
};
use bindings::Bindings;
use std::sync::Arc;
use tokio::net::UnixStream;

/// The security service's handle, shared by the server and the handlers.
pub struct Security {
    bindings: Bindings,
    /// The tamper-evident audit log (docs/SECURITY.md, "Audit log").
    pub audit: Arc<audit::Audit>,
    detector: Arc<detect::Detector>,
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
    /// Opens the granted role bindings. Blocking.
    pub fn new(
        process: Process,
        settings: SettingsHandle,
        state: &State,
        audit: Arc<audit::Audit>,
        detector: Arc<detect::Detector>,
    ) -> Result<Self, StateError> {
        Ok(Self {
            bindings: Bindings::open(state, process, settings)?,
            audit,
            detector,
        })
    }

    /// Suspicious-activity detection: alerts, lockouts, denial counts, recovery drills.
    pub fn detector(&self) -> &Arc<detect::Detector> {
        &self.detector
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

    /// The strongest role `uid` holds now for requests about no particular repository (what
    /// `whoami` and the Welcome show); `None` when it holds none.
    pub fn role_of(&self, uid: u32) -> Option<Role> {
        bindings::resolve::strongest(&self.bindings.sources(uid, None))
    }

    /// The roles `uid` holds now for a request about `repo` (`None`: about no repository),
    /// strongest first.
    pub fn roles_of(&self, uid: u32, repo: Option<&str>) -> Vec<Role> {
        let mut roles: Vec<Role> = self
            .bindings
            .sources(uid, repo)
            .iter()
            .map(GrantSource::role)
            .collect();
        roles.dedup();
        roles
    }

    /// Every binding, declared and granted, expired ones included.
    pub fn bindings(&self) -> Vec<BindingInfo> {
        self.bindings.list()
    }

    /// The bindings service, for the `security` request handlers.
    pub fn binding_service(&self) -> &Bindings {
        &self.bindings
    }

    /// The one permission check every request passes, against the bindings in force now.
    pub fn authorize(&self, identity: &Identity, request: &Request) -> Result<(), Error> {
        // A locked-out uid is refused everything, whatever its role.
        self.detector.check_lock(identity.uid)?;
        let repo = authorize::repository(request);
        let held = self.bindings.sources(identity.uid, repo.as_deref());
        authorize::check(identity.uid, &held, request)
    }

    /// Whether `identity` holds `permission` (for `repo`, when the question is about one):
    /// for the rights that no request names, such as acting as root (`backup.any`).
    pub fn holds(&self, identity: &Identity, permission: Permission, repo: Option<&str>) -> bool {
        self.bindings
            .sources(identity.uid, repo)
            .iter()
            .any(|s| s.role().grants(permission))
    }

    /// Records how a request ended: in the audit log (before the reply is sent, so the entry
    /// of a change is on disk before the client hears of it) and in suspicious-activity
    /// detection.
    pub fn after_request(&self, identity: &Identity, request: &Request, outcome: Outcome<'_>) {
        let role = self.role_of(identity.uid);
        if self.audit.enabled() {
            if let Some(entry) = audit::record::request_entry(identity, role, request, &outcome) {
                self.record(entry);
            }
        }
        let seen = match outcome {
            Outcome::Denied(reply) => detect::Seen::Denied(reply),
            Outcome::Answered(result) => detect::Seen::Answered(result.as_ref().map(drop)),
            Outcome::Cut => detect::Seen::Cut,
        };
        let needed = authorize::needed(request);
        self.detector
            .observe(identity.uid, administers(role), request, needed, seen);
    }

    /// Records a connection whose handshake failed (`reason` is what the client was told).
    pub fn handshake_failed(&self, identity: &Identity, reason: &str) {
        if self.audit.enabled() {
            self.record(audit::record::handshake_entry(identity, reason));
        }
        self.detector.handshake_failed(identity.uid);
    }

    fn record(&self, entry: audit::NewEntry) {
        if let Err(e) = self.audit.append(entry) {
            // The request was already answered; the failure is for the administrator to see.
            tracing::error!(error = %e, "could not write the audit log");
        }
    }
}

/// Whether `role` administers the daemon: exempt from per-uid connection caps and served large
/// frames.
pub fn administers(role: Option<Role>) -> bool {
    matches!(role, Some(Role::SuperAdmin | Role::Admin))
}
