//! `repo init --replica-of` and `repo replicate add|list|remove`. (`repo replicate run`
//! submits the `replicate` job through the queue.)

use super::{blocking, Outcome};
use crate::ops::repos::info;
use crate::server::Services;
use backupd_common::protocol::{RepoRequest, Response};

pub async fn handle(services: &Services, request: RepoRequest) -> Outcome {
    let registry = services.repos.clone();
    let replications = services.replications.clone();
    let timers = services.timers.clone();
    Outcome::result(
        blocking(move || {
            let reply = match request {
                RepoRequest::InitReplica(r) => {
                    let entry = registry.init_replica(
                        &r.name,
                        &super::repo::location_of(r.path)?,
                        r.password.as_ref().map(|p| p.0.as_slice()),
                        &r.source,
                        r.own_data_key,
                    )?;
                    tracing::info!(name = %entry.name, location = %entry.location, source = %r.source, own_data_key = r.own_data_key, "replica created; back up its key (`backupctl repo key export`)");
                    Response::Repo(info(&registry, &entry))
                }
                RepoRequest::ReplicateAdd(spec) => {
                    let added = replications.add(spec)?;
                    tracing::info!(from = %added.spec.from, to = %added.spec.to, "replication stored");
                    // A schedule or interval is a timer: plan again now.
                    timers.wake();
                    Response::Replication(Box::new(added))
                }
                RepoRequest::ReplicateList => Response::Replications(replications.list()),
                RepoRequest::ReplicateRemove { to } => {
                    let removed = replications.remove(&to)?;
                    timers.wake();
                    Response::Replication(Box::new(removed))
                }
                _ => unreachable!("the repo handler passes only replication requests"),
            };
            Ok(reply)
        })
        .await,
    )
}
