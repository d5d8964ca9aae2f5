//! `snapshots`: listing what a repository holds (through the repository service).

use super::{blocking, Outcome};
use crate::server::Services;
use backupd_common::protocol::{Identity, Response, SnapshotsRequest};

pub async fn snapshots(services: &Services, identity: &Identity, r: SnapshotsRequest) -> Outcome {
    let registry = services.repos.clone();
    let scope = scope(identity);
    Outcome::result(
        blocking(move || {
            crate::ops::repos::snapshots(&registry, &r, scope).map(Response::Snapshots)
        })
        .await,
    )
}

/// Whose snapshots the caller sees: all for those who administer the daemon, else the ones
/// made for them.
pub fn scope(identity: &Identity) -> crate::repo::Scope {
    if crate::security::administers(identity.role) {
        crate::repo::Scope::All
    } else {
        crate::repo::Scope::OwnedBy(identity.uid)
    }
}
