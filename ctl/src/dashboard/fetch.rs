//! One refresh of the dashboard: the five read requests it needs, gathered into a [`View`].
//!
//! The [`Fetcher`] owns the connection. A request the daemon refuses (a role without
//! `perf`/`source` reads, say) fails only its own section; a lost connection, a refused connect
//! or a daemon that stops answering marks the whole view unreachable, keeps the last data it
//! had, and the next refresh connects again. It never gives up: the dashboard outlives daemon
//! restarts.

use crate::client::Client;
use backupd_common::client::ClientError;
use backupd_common::protocol::{HealthReport, PerfCurrent, PerfSample, QueueStatus, SourceInfo};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How far back the sparklines reach.
pub const HISTORY: Duration = Duration::from_secs(3600);
/// Samples asked for: more than any sparkline is wide, so the daemon thins and we take the tail.
pub const MAX_POINTS: u32 = 240;
/// A refresh that takes longer than this (or the interval, if longer) counts as a lost daemon:
/// a hung daemon must show as such instead of freezing the screen on old numbers.
const MIN_DEADLINE: Duration = Duration::from_secs(5);

/// What the screen shows: everything [`super::draw`] needs, and nothing it would have to ask for.
#[derive(Clone, Debug)]
pub struct View {
    /// When the view was gathered (ns since the epoch): ages ("3m ago") are counted from it, so
    /// rendering stays a pure function of the view.
    pub now_ns: i64,
    pub interval: Duration,
    pub link: Link,
    pub health: Section<HealthReport>,
    pub sources: Section<Vec<SourceInfo>>,
    pub queue: Section<QueueStatus>,
    pub perf: Section<PerfCurrent>,
    /// Oldest first.
    pub samples: Section<Vec<PerfSample>>,
}

/// The state of the connection to the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Before the first refresh finished.
    Connecting,
    Up,
    /// The last refresh could not reach the daemon; the sections hold what the last good one
    /// got.
    Down {
        reason: String,
        /// Seconds since the last good refresh; `None`: there was none.
        stale_secs: Option<u64>,
    },
}

/// One request's part of the view.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Section<T> {
    /// Not answered yet.
    #[default]
    Waiting,
    Ready(T),
    /// The daemon refused the request (e.g. permission denied): its message.
    Failed(String),
}

impl<T> Section<T> {
    pub fn ready(&self) -> Option<&T> {
        match self {
            Self::Ready(value) => Some(value),
            Self::Waiting | Self::Failed(_) => None,
        }
    }
}

impl View {
    /// The view before the first answer.
    pub fn connecting(interval: Duration) -> Self {
        Self {
            now_ns: now_ns(),
            interval,
            link: Link::Connecting,
            health: Section::Waiting,
            sources: Section::Waiting,
            queue: Section::Waiting,
            perf: Section::Waiting,
            samples: Section::Waiting,
        }
    }
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Keeps the connection and the last view between refreshes.
#[derive(Debug)]
pub struct Fetcher {
    socket: PathBuf,
    owner: Option<u32>,
    client: Option<Client>,
    view: View,
    last_ok: Option<Instant>,
    deadline: Duration,
}

impl Fetcher {
    pub fn new(socket: PathBuf, owner: Option<u32>, interval: Duration) -> Self {
        Self {
            socket,
            owner,
            client: None,
            view: View::connecting(interval),
            last_ok: None,
            deadline: interval.max(MIN_DEADLINE),
        }
    }

    /// Asks the daemon for everything once (connecting first if needed) and returns the view.
    pub async fn refresh(&mut self) -> View {
        let outcome = tokio::time::timeout(self.deadline, self.gather()).await;
        let lost = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(reason)) => Some(reason),
            Err(_) => Some(format!(
                "no answer within {}",
                humantime::format_duration(self.deadline)
            )),
        };
        self.view.now_ns = now_ns();
        self.view.link = match lost {
            None => {
                self.last_ok = Some(Instant::now());
                Link::Up
            }
            Some(reason) => {
                // Whatever state the connection is in, the next refresh starts a fresh one.
                self.client = None;
                Link::Down {
                    reason,
                    stale_secs: self.last_ok.map(|t| t.elapsed().as_secs()),
                }
            }
        };
        self.view.clone()
    }

    /// Fills the view's sections; `Err` is why the daemon could not be reached.
    async fn gather(&mut self) -> Result<(), String> {
        let client = match &mut self.client {
            Some(client) => client,
            None => self.client.insert(
                Client::connect(&self.socket, self.owner)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
        };
        let view = &mut self.view;
        view.health = section(client.health().await)?;
        view.sources = section(client.sources().await)?;
        view.queue = section(client.queue_status().await)?;
        view.perf = section(client.perf_current().await)?;
        view.samples = section(client.perf_metrics(HISTORY, MAX_POINTS).await)?;
        Ok(())
    }
}

/// A request's answer as a section, or why the connection is gone.
fn section<T>(result: Result<T, ClientError>) -> Result<Section<T>, String> {
    match result {
        Ok(value) => Ok(Section::Ready(value)),
        Err(ClientError::Remote(e)) => Ok(Section::Failed(e.message)),
        // A daemon of another build: this section cannot be shown, the others may.
        Err(e @ ClientError::Unexpected(_)) => Ok(Section::Failed(e.to_string())),
        Err(
            e @ (ClientError::Unreachable { .. }
            | ClientError::SocketPermission { .. }
            | ClientError::UntrustedDaemon { .. }
            | ClientError::Frame(_)
            | ClientError::Closed),
        ) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backupd_common::error::{ErrorCode, ErrorReply};

    #[test]
    fn a_refused_request_fails_its_section_and_a_lost_connection_the_view() {
        let denied = ClientError::Remote(ErrorReply::new(ErrorCode::PermissionDenied, "no perf"));
        assert_eq!(
            section::<()>(Err(denied)),
            Ok(Section::Failed("no perf".into()))
        );
        assert!(section::<()>(Err(ClientError::Closed)).is_err());
        assert_eq!(section(Ok(3)), Ok(Section::Ready(3)));
    }

    #[tokio::test]
    async fn a_missing_daemon_is_reported_and_retried_not_fatal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("none.sock");
        let mut fetcher = Fetcher::new(socket.clone(), None, Duration::from_millis(100));
        for _ in 0..2 {
            let view = fetcher.refresh().await;
            match &view.link {
                Link::Down { reason, stale_secs } => {
                    assert!(reason.contains("none.sock"), "{reason}");
                    assert_eq!(*stale_secs, None);
                }
                other => panic!("expected the daemon to be unreachable, got {other:?}"),
            }
            assert_eq!(view.health, Section::Waiting);
        }
    }
}
