//! `recovery` group: snapshot fitness and selection, plans and their status, the recovery
//! objectives (running, rolling back and committing a plan are `recovery` jobs, drills are
//! `drill` jobs, submitted through the queue).

use super::snapshots::scope;
use super::{blocking, Outcome};
use crate::recovery::{objectives, throughput};
use crate::server::Services;
use backupd_common::protocol::{Identity, RecoveryRequest, Response};

pub async fn handle(services: &Services, identity: &Identity, request: RecoveryRequest) -> Outcome {
    let recovery = services.recovery.clone();
    let scope = scope(identity);
    let uid = identity.uid;
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
            RecoveryRequest::Fitness(r) => Response::Fitness(recovery.fitness(&r, scope)?),
            RecoveryRequest::Select(r) => {
                Response::Selection(Box::new(recovery.select(&r, scope)?))
            }
            RecoveryRequest::Plan(r) => Response::RecoveryPlan(Box::new(recovery.plan(*r, uid)?)),
            RecoveryRequest::Status { plan } => {
                Response::RecoveryPlan(Box::new(recovery.status(&plan)?))
            }
            RecoveryRequest::List => Response::RecoveryPlans(recovery.list()),
        })
    })
    .await;
    Outcome::result(result)
}
