//! The Prometheus endpoint: `GET /metrics` over HTTP/1.1 on `metrics.listen`, off unless that
//! is set (docs/OPERATIONS.md, "Prometheus metrics", lists every metric).
//!
//! [`Metrics`] is built from the handles it reads ([`Handles`]) and owns what it counts from
//! the queue's job events ([`observe`]). Each scrape reads the services ([`gather`]), encodes
//! a fresh registry ([`encode`]) and serves it ([`serve`]); the `process_*` figures come from
//! `/proc/self` ([`process`]).
//!
//! Tasks: [`Metrics::run`] is one task on the tracker that follows the job events and accepts
//! connections, each connection a task of its own under the limits of [`serve`]. All of them
//! stop when the service's token is cancelled. A reload rebinds through
//! [`Metrics::listen_on`]. The endpoint never writes anything and never reads a request body;
//! an address it cannot bind at start is logged and the daemon runs on without it.

pub mod encode;
pub mod gather;
pub mod observe;
pub mod process;
pub mod serve;

use crate::context::SettingsHandle;
use crate::perf::Perf;
use crate::queue::Queue;
use crate::schedule::Timers;
use crate::watch::Sources;
use backupd_common::protocol::JobEvent;
use hyper::body::Bytes;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A rendered exposition is served again to scrapes within this long: a client that scrapes
/// in a loop costs one render a second, not one per request.
const RENDER_REUSE: Duration = Duration::from_secs(1);
/// The pause after a failed accept (out of descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(
        "metrics.listen: cannot listen on {addr}: {source}{}; the metrics endpoint is off \
         until metrics.listen names an address it can listen on and the configuration is \
         reloaded",
        bind_hint(source)
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("rendering the metrics failed: {0}")]
    Render(String),
}

/// What to do about a bind error whose cause is not plain from its text.
fn bind_hint(e: &std::io::Error) -> &'static str {
    if e.raw_os_error() == Some(libc::EAFNOSUPPORT) {
        // The shipped unit's RestrictAddressFamilies=AF_UNIX.
        " (under the shipped systemd unit, add the drop-in of docs/OPERATIONS.md, \
         \"Prometheus metrics\", that allows AF_INET)"
    } else {
        ""
    }
}

/// What the endpoint reads.
pub struct Handles {
    pub queue: Arc<Queue>,
    pub sources: Arc<Sources>,
    pub perf: Arc<Perf>,
    pub timers: Arc<Timers>,
    pub settings: SettingsHandle,
    /// Connection tasks are spawned here, so that shutdown waits for them.
    pub tasks: TaskTracker,
}

/// A change of address bound but not yet served ([`Metrics::prepare`]); dropping it closes
/// the new socket and leaves the endpoint as it was.
pub struct Rebind(Option<Option<Arc<Endpoint>>>);

/// The address served on and its socket.
struct Endpoint {
    /// As configured (a port 0 stays 0 here, so a reload compares like with like).
    addr: SocketAddr,
    listener: TcpListener,
}

pub struct Metrics {
    h: Handles,
    observed: observe::Observed,
    /// Subscribed when the service is built, before any job runs; taken by [`Metrics::run`].
    events: Mutex<Option<broadcast::Receiver<JobEvent>>>,
    endpoint: watch::Sender<Option<Arc<Endpoint>>>,
    /// The last exposition and when it was rendered. Held across the render, so renders never
    /// run side by side.
    rendered: tokio::sync::Mutex<Option<(Instant, Bytes)>>,
    slots: Arc<Semaphore>,
}

impl Metrics {
    pub fn new(h: Handles) -> Self {
        let events = h.queue.subscribe();
        Self {
            h,
            observed: observe::Observed::new(),
            events: Mutex::new(Some(events)),
            endpoint: watch::Sender::new(None),
            rendered: tokio::sync::Mutex::new(None),
            slots: Arc::new(Semaphore::new(serve::MAX_CONNECTIONS)),
        }
    }

    /// The configured address served on now; `None` when off or when it could not be bound.
    pub fn serving(&self) -> Option<SocketAddr> {
        self.endpoint.borrow().as_ref().map(|e| e.addr)
    }

    /// The address the socket is bound to (a configured port 0 resolved).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint
            .borrow()
            .as_ref()
            .and_then(|e| e.listener.local_addr().ok())
    }

    /// Binds `metrics.listen` as configured at start. A failure is logged and the daemon runs
    /// on without the endpoint: metrics are not worth refusing to back up over.
    pub async fn start(&self) {
        let listen = self.h.settings.get().config.metrics.listen;
        if let Err(e) = self.listen_on(listen).await {
            tracing::error!(error = %e, "the metrics endpoint is off");
        }
    }

    /// Serves on `listen` from now on (`None`: stops serving). Returns whether anything
    /// changed.
    pub async fn listen_on(&self, listen: Option<SocketAddr>) -> Result<bool, MetricsError> {
        let rebind = self.prepare(listen).await?;
        Ok(self.commit(rebind))
    }

    /// Binds `listen` if it is not what is served now, without serving it yet: a reload binds
    /// before it changes anything, so an address that cannot be bound rejects it whole. The
    /// old address is let go only when the result is committed.
    pub async fn prepare(&self, listen: Option<SocketAddr>) -> Result<Rebind, MetricsError> {
        if self.serving() == listen {
            return Ok(Rebind(None));
        }
        Ok(Rebind(Some(match listen {
            None => None,
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| MetricsError::Bind { addr, source })?;
                Some(Arc::new(Endpoint { addr, listener }))
            }
        })))
    }

    /// Serves what [`Metrics::prepare`] bound; returns whether anything changed.
    pub fn commit(&self, rebind: Rebind) -> bool {
        let Some(endpoint) = rebind.0 else {
            return false;
        };
        self.endpoint.send_replace(endpoint);
        match self.local_addr() {
            Some(addr) => tracing::info!(
                address = %addr,
                "serving Prometheus metrics on http://{addr}/metrics"
            ),
            None => tracing::info!("metrics endpoint stopped (metrics.listen is unset)"),
        }
        true
    }

    /// The exposition now, or one rendered within [`RENDER_REUSE`].
    pub async fn render(self: &Arc<Self>) -> Result<Bytes, MetricsError> {
        let mut rendered = self.rendered.lock().await;
        if let Some((at, body)) = rendered.as_ref() {
            if at.elapsed() < RENDER_REUSE {
                return Ok(body.clone());
            }
        }
        let me = self.clone();
        let text = tokio::task::spawn_blocking(move || {
            encode::encode(&gather::gather(&me.h), &me.observed)
        })
        .await
        .map_err(|e| MetricsError::Render(e.to_string()))?
        .map_err(|e| MetricsError::Render(e.to_string()))?;
        let body = Bytes::from(text);
        *rendered = Some((Instant::now(), body.clone()));
        Ok(body)
    }

    /// Follows the job events and serves connections until `cancel` fires.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner()).take();
        let observe = async {
            if let Some(events) = events {
                self.observe(events, &cancel).await;
            }
        };
        tokio::join!(observe, self.accept(&cancel));
    }

    async fn observe(&self, mut events: broadcast::Receiver<JobEvent>, cancel: &CancellationToken) {
        loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => return,
                e = events.recv() => e,
            };
            match event {
                Ok(event) => {
                    let job = if event.progress.is_none() && event.state.is_final() {
                        self.h.queue.job(event.job)
                    } else {
                        None
                    };
                    self.observed.on_event(&event, job.as_ref());
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(lost = n, "the metrics fell behind the job events");
                    self.observed.missed(n);
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    async fn accept(self: &Arc<Self>, cancel: &CancellationToken) {
        let mut changes = self.endpoint.subscribe();
        loop {
            let endpoint = changes.borrow_and_update().clone();
            let accepted = async {
                match &endpoint {
                    Some(e) => e.listener.accept().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                accepted = accepted => match accepted {
                    Ok((stream, peer)) => match self.slots.clone().try_acquire_owned() {
                        Ok(slot) => {
                            self.h.tasks.spawn(serve::connection(
                                self.clone(),
                                stream,
                                slot,
                                cancel.clone(),
                            ));
                        }
                        Err(_) => {
                            tracing::debug!(
                                %peer,
                                limit = serve::MAX_CONNECTIONS,
                                "metrics connections at their limit; closing a new one"
                            );
                            drop(stream);
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics endpoint: accept failed");
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                        }
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bind_error_names_the_key_the_address_and_for_a_sandbox_the_fix() {
        let addr: SocketAddr = "127.0.0.1:9911".parse().expect("addr");
        let sandboxed = MetricsError::Bind {
            addr,
            source: std::io::Error::from_raw_os_error(libc::EAFNOSUPPORT),
        }
        .to_string();
        assert!(sandboxed.starts_with("metrics.listen: cannot listen on 127.0.0.1:9911"));
        assert!(sandboxed.contains("drop-in"), "{sandboxed}");
        let taken = MetricsError::Bind {
            addr,
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        }
        .to_string();
        assert!(taken.contains("127.0.0.1:9911"), "{taken}");
        assert!(!taken.contains("drop-in"), "{taken}");
    }
}
