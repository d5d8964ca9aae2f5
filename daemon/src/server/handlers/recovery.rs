//! `recovery` group: the recovery objectives (drills are `drill` jobs, submitted through the
//! queue).

use super::{blocking, Outcome};
use crate::recovery::{objectives, throughput};
use crate::server::Services;
use backupd_common::protocol::{RecoveryRequest, Response};

pub async fn handle(services: &Services, request: RecoveryRequest) -> Outcome {
    let (queue, repos, drills, sources) = (
        services.queue.clone(),
        services.repos.clone(),
        services.drills.clone(),
        services.sources.list(),
    );
    let result = blocking(move || {
        Ok(match request {
            RecoveryRequest::Objectives => {
                let measured = throughput::measured(&queue);
                let now = crate::repo::now_ns();
                Response::Objectives(Box::new(objectives::objectives(
                    &sources, &repos, &drills, measured, now,
                )))
            }
        })
    })
    .await;
    Outcome::result(result)
}
