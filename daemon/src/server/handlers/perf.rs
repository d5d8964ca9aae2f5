//! `perf` group: the monitor's samples, bottlenecks and report, and the tuner.

use super::{blocking, Outcome};
use crate::server::Services;
use backupd_common::protocol::{PerfRequest, Response};
use std::time::Duration;

/// Bounds what one request may ask for: the history holds at most `perf.keep` anyway.
const MAX_WINDOW: Duration = Duration::from_secs(366 * 86_400);

pub async fn handle(services: &Services, request: PerfRequest) -> Outcome {
    let perf = services.perf.clone();
    let window = |ms: u64| Duration::from_millis(ms).min(MAX_WINDOW);
    let result = blocking(move || {
        Ok(match request {
            PerfRequest::Current => Response::PerfCurrent(Box::new(perf.current())),
            PerfRequest::Report { since_ms } => {
                Response::PerfReport(Box::new(perf.report(window(since_ms))))
            }
            PerfRequest::Metrics {
                since_ms,
                max_points,
            } => Response::PerfSamples(perf.samples(window(since_ms), max_points)),
            PerfRequest::Bottlenecks { since_ms } => {
                Response::Bottlenecks(perf.bottlenecks(window(since_ms)))
            }
            PerfRequest::History { since_ms } => {
                Response::TuningHistory(perf.history(window(since_ms)))
            }
            PerfRequest::Optimize => {
                // Decide on fresh numbers, not on a sample up to 30 s old.
                perf.sample_now();
                Response::Optimized(Box::new(perf.optimize("manual")))
            }
            PerfRequest::Auto { on } => Response::Optimized(Box::new(perf.set_auto(on))),
        })
    })
    .await;
    Outcome::result(result)
}
