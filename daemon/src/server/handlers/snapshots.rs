//! `snapshots`: listing what a repository holds (through the repository service).

use super::{blocking, Outcome};
use crate::server::Services;
use backupd_common::protocol::{Response, SnapshotsRequest};

pub async fn snapshots(services: &Services, r: SnapshotsRequest) -> Outcome {
    let registry = services.repos.clone();
    Outcome::result(
        blocking(move || crate::ops::repos::snapshots(&registry, &r).map(Response::Snapshots))
            .await,
    )
}
