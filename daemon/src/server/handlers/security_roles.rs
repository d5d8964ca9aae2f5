//! `security` group, roles part: grant, revoke, bindings, check.

use super::{blocking, Outcome};
use crate::server::Services;
use backupd_common::protocol::{Identity, Response, SecurityRequest, SecurityResponse};

pub async fn handle(services: &Services, identity: &Identity, request: SecurityRequest) -> Outcome {
    let security = services.security.clone();
    let granter = identity.uid;
    let result = blocking(move || {
        let bindings = security.binding_service();
        Ok(match request {
            SecurityRequest::Grant {
                role,
                subject,
                repos,
                expires,
            } => SecurityResponse::Granted(bindings.grant(granter, role, subject, repos, expires)?),
            SecurityRequest::Revoke(target) => SecurityResponse::Revoked(bindings.revoke(&target)?),
            SecurityRequest::Bindings => SecurityResponse::Bindings(bindings.list()),
            SecurityRequest::Check {
                uid,
                permission,
                repo,
            } => SecurityResponse::Check(bindings.check(uid, permission, repo)),
            other => {
                return Err(crate::error::Error::Internal(format!(
                    "`{}` reached the roles handler",
                    other.name()
                )))
            }
        })
    })
    .await;
    Outcome::result(result.map(Response::Security))
}
