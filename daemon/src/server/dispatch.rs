//! From request to handler: one `match`, nothing else.

use super::frames::Passed;
use super::handlers::{self, Outcome};
use super::Server;
use backupd_common::protocol::{Identity, Request, SecurityRequest};
use std::sync::Arc;

/// `passed`: the descriptors the request carries (see `super::passing`); only file requests
/// take them.
pub async fn dispatch(
    server: &Arc<Server>,
    identity: &Identity,
    request: Request,
    passed: Passed,
) -> Outcome {
    match request {
        Request::System(r) => handlers::system::handle(server, identity, r).await,
        Request::Repo(r) => handlers::repo::handle(&server.services, identity, r).await,
        Request::Snapshots(r) => {
            handlers::snapshots::snapshots(&server.services, identity, r).await
        }
        Request::Queue(r) => handlers::queue::handle(&server.services, identity, r).await,
        Request::Source(r) => handlers::source::handle(&server.services, r).await,
        Request::Security(r @ (SecurityRequest::Audit(_) | SecurityRequest::AuditVerify)) => {
            handlers::security_audit::handle(&server.services, r).await
        }
        Request::Security(
            r @ (SecurityRequest::Grant { .. }
            | SecurityRequest::Revoke(_)
            | SecurityRequest::Bindings
            | SecurityRequest::Check { .. }),
        ) => handlers::security_roles::handle(&server.services, identity, r).await,
        Request::Security(r @ (SecurityRequest::Encrypt(_) | SecurityRequest::Decrypt(_))) => {
            handlers::security_files::handle(&server.services, r, passed)
        }
        Request::Security(r) => handlers::security_alerts::handle(server, identity, r).await,
        Request::Perf(r) => handlers::perf::handle(&server.services, r).await,
        Request::Sync(r) => handlers::sync::handle(&server.services, r).await,
        Request::Recovery(r) => handlers::recovery::handle(&server.services, identity, r).await,
        Request::Browse(r) => handlers::browse::handle(&server.services, identity, r).await,
        Request::Analytics(r) => handlers::analytics::handle(&server.services, r).await,
    }
}
