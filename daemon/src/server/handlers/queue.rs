//! `queue` group and `events`: submitting jobs, watching and steering them.

use super::{blocking, Outcome, Reply, StreamItem};
use crate::error::Error;
use crate::security::fsid::{self, FsIdentity};
use crate::server::Services;
use backupd_common::protocol::{
    AlertInfo, AnomalyInfo, Identity, JobId, JobKind, JobSpec, Permission, Progress, QueueRequest,
    Response,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// How often `queue wait` sends a progress frame of a running job.
const WAIT_TICK: Duration = Duration::from_millis(250);

pub async fn handle(services: &Services, identity: &Identity, request: QueueRequest) -> Outcome {
    let q = services.settings.get().config.queue.clone();
    let queue = &services.queue;
    match request {
        QueueRequest::Submit(spec) => Outcome::result(submit(services, identity, *spec).await),
        QueueRequest::Status => Outcome::ok(Response::QueueStatus(queue.status(&q))),
        QueueRequest::Job { id } => Outcome::result(
            queue
                .job(id)
                .map(|j| Response::Job(Box::new(j)))
                .ok_or(Error::JobNotFound { id }),
        ),
        QueueRequest::Wait { id } => wait(services, id),
        QueueRequest::Cancel { id } => {
            Outcome::result(queue.cancel(id).await.map(|j| Response::Job(Box::new(j))))
        }
        QueueRequest::DeadLetters => Outcome::ok(Response::Jobs(queue.dead_letters())),
        QueueRequest::RetryDeadLetter { id } => Outcome::result(
            queue
                .retry_dead_letter(id)
                .await
                .map(|j| Response::Job(Box::new(j))),
        ),
        QueueRequest::PurgeDeadLetters => {
            Outcome::result(queue.purge_dead_letters().await.map(Response::Purged))
        }
        QueueRequest::History(query) => {
            let queue = queue.clone();
            Outcome::result(blocking(move || Ok(Response::History(queue.history(&query)?))).await)
        }
        QueueRequest::Workers { count } => Outcome::result(match count {
            Some(n) => queue.set_workers(n).map(Response::Workers),
            None => Ok(Response::Workers(queue.workers())),
        }),
        QueueRequest::Events { follow, backlog } => {
            // Alerts name uids and what they did: only for those who may read alerts.
            let alerts = services
                .security
                .holds(identity, Permission::SecurityRead, None)
                .then(|| services.security.detector().subscribe());
            // Anomalies are analytics: for those who may read the system's state (redacted
            // for non-admins like any analytics reply).
            let anomalies = services
                .security
                .holds(identity, Permission::SystemRead, None)
                .then(|| services.analytics.subscribe());
            events(services, follow, backlog, alerts, anomalies)
        }
    }
}

/// Pins the repository name the job refers to (so conflicts and coalescing compare like with
/// like, and a later change of the default does not redirect it), refuses arguments that are
/// wrong already (`ops::validate`), then queues the job.
async fn submit(
    services: &Services,
    identity: &Identity,
    mut spec: JobSpec,
) -> Result<Response, Error> {
    let command = crate::ops::command(&spec.kind);
    // A drill of a source drills the source's repository.
    if let JobKind::Drill(d) = &mut spec.kind {
        if let Some(name) = &d.source {
            let source = services
                .sources
                .get(name)
                .map_err(|e| crate::ops::refused(command, e.into()))?;
            if d.repo.is_none() {
                d.repo = source.spec.repo;
            }
        }
    }
    if let Some(field) = spec.kind.repo_mut() {
        let registry = services.repos.clone();
        let name = field.clone();
        let entry = blocking(move || Ok(registry.entry(name.as_deref())?))
            .await
            .map_err(|e| crate::ops::refused(command, e))?;
        *field = Some(entry.name);
    }
    let repo = spec.kind.repo().flatten().map(str::to_owned);
    let acts_as = crate::ops::acts_as(&spec.kind, identity, |any| {
        services.security.holds(identity, any, repo.as_deref())
    });
    let (registry, kind) = (services.repos.clone(), spec.kind.clone());
    // Checked with the rights the job will have: a user learns nothing from the answer about
    // paths (or exclude files) they could not look at themselves.
    blocking(move || {
        let identity = acts_as
            .map(|user| FsIdentity::resolve(user).map(Arc::new))
            .transpose()
            .map_err(crate::engine::EngineError::from)?;
        let _acting = identity
            .as_ref()
            .map(fsid::enter)
            .transpose()
            .map_err(crate::engine::EngineError::from)?;
        crate::ops::validate(&kind, &registry)
    })
    .await?;
    let q = services.settings.get().config.queue.clone();
    let submitted = services
        .queue
        .submit(spec, identity.uid, acts_as, &q)
        .await?;
    Ok(Response::Submitted(submitted))
}

/// Streams the job's progress while it runs and its non-final transitions; the final frame is
/// the job once it is final. The task ends as soon as the connection drops the receiver.
fn wait(services: &Services, id: JobId) -> Outcome {
    let (tx, rx) = mpsc::channel(8);
    let (queue, shutdown) = (services.queue.clone(), services.shutdown.clone());
    services.tasks.spawn(async move {
        let mut events = queue.subscribe();
        let mut tick = tokio::time::interval(WAIT_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = loop {
            let Some(job) = queue.job(id) else {
                break Err(Error::JobNotFound { id });
            };
            if job.state.is_final() {
                // What the reply tells must be on disk.
                break queue.flush().await.map(|()| Response::Job(Box::new(job)));
            }
            tokio::select! {
                _ = shutdown.cancelled() => break Err(Error::ShuttingDown),
                _ = tx.closed() => return, // the client left; the job goes on
                event = events.recv() => match event {
                    Ok(e) if e.job != id || e.progress.is_some() => continue,
                    // The waiter sees the job's transitions too (a retry, its error, the delay).
                    Ok(e) if !e.state.is_final() => {
                        if tx.send(StreamItem::Progress(Progress::Event(e))).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break Err(Error::ShuttingDown),
                },
                _ = tick.tick() => {
                    if let Some(p) = queue.progress(id) {
                        if tx.send(StreamItem::Progress(Progress::Operation(p))).await.is_err() {
                            return; // the client left; the job goes on
                        }
                    }
                }
            }
        };
        let _ = tx
            .send(StreamItem::Final(result.map_err(|e| e.to_reply())))
            .await;
    });
    Outcome {
        reply: Reply::Stream(rx),
        after: None,
    }
}

/// Streams the recent events, then (with `follow`) every new one until the client leaves.
fn events(
    services: &Services,
    follow: bool,
    backlog: u32,
    mut alerts: Option<broadcast::Receiver<AlertInfo>>,
    mut anomalies: Option<broadcast::Receiver<AnomalyInfo>>,
) -> Outcome {
    let (tx, rx) = mpsc::channel(64);
    let (queue, shutdown) = (services.queue.clone(), services.shutdown.clone());
    services.tasks.spawn(async move {
        let (recent, mut live) = queue.follow(backlog as usize);
        for e in recent {
            if tx
                .send(StreamItem::Progress(Progress::Event(e)))
                .await
                .is_err()
            {
                return;
            }
        }
        if follow {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tx.closed() => return,
                    Some(alert) = next_alert(&mut alerts) => {
                        if tx.send(StreamItem::Progress(Progress::Alert(alert))).await.is_err() {
                            return;
                        }
                    }
                    Some(anomaly) = next_alert(&mut anomalies) => {
                        let frame = Progress::Anomaly(Box::new(anomaly));
                        if tx.send(StreamItem::Progress(frame)).await.is_err() {
                            return;
                        }
                    }
                    event = live.recv() => match event {
                        Ok(e) => {
                            if tx.send(StreamItem::Progress(Progress::Event(e))).await.is_err() {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            let e = Error::Internal(format!(
                                "this follower fell {n} events behind and lost them; run \
                                 `backupctl events --follow` again"
                            ));
                            let _ = tx.send(StreamItem::Final(Err(e.to_reply()))).await;
                            return;
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                }
            }
        }
        let _ = tx.send(StreamItem::Final(Ok(Response::Done))).await;
    });
    Outcome {
        reply: Reply::Stream(rx),
        after: None,
    }
}

/// The next alert (or anomaly) for an `events` follower; pending forever without a
/// subscription or once the sender is gone. A follower that lags loses the ones it missed
/// (they stay listed by `security alerts` and `analytics anomalies`).
async fn next_alert<T: Clone>(alerts: &mut Option<broadcast::Receiver<T>>) -> Option<T> {
    loop {
        match alerts.as_mut() {
            None => return std::future::pending().await,
            Some(rx) => match rx.recv().await {
                Ok(a) => return Some(a),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => *alerts = None,
            },
        }
    }
}
