//! HTTP/1.1 for the endpoint, with hyper: routing, responses and the limits that keep a
//! client from holding the daemon's memory or descriptors.
//!
//! Limits (the numbers are in docs/OPERATIONS.md too):
//! - at most [`MAX_CONNECTIONS`] connections at once; one more is closed as soon as it is
//!   accepted, before anything is read from it;
//! - a request's head must arrive within [`HEADER_READ_TIMEOUT`] (also between the requests of
//!   a kept-alive connection), else the connection is closed;
//! - a head over [`MAX_HEADER_BYTES`] (request line included) is answered 431 and closed, and
//!   no connection buffers more than [`MAX_BUF_BYTES`]; request bodies are never read;
//! - no connection lives longer than [`CONNECTION_DEADLINE`], whatever it does (a client that
//!   never reads its response included).

use super::Metrics;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

pub const MAX_CONNECTIONS: usize = 16;
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// hyper's floor is 8 KiB; its default (about 400 KiB) times the connections would be 6 MiB
/// a client could make the daemon hold.
pub const MAX_BUF_BYTES: usize = 16 * 1024;
pub const MAX_HEADERS: usize = 32;

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Metrics,
    /// `/metrics` with another method than GET or HEAD.
    MethodNotAllowed,
    NotFound,
}

pub fn route(method: &Method, path: &str) -> Route {
    match path {
        "/metrics" if method == Method::GET || method == Method::HEAD => Route::Metrics,
        "/metrics" => Route::MethodNotAllowed,
        _ => Route::NotFound,
    }
}

fn builder() -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_BUF_BYTES)
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    b
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Answers one request. The body of a request is never read.
pub async fn respond(metrics: &Arc<Metrics>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    match route(req.method(), req.uri().path()) {
        Route::NotFound => text(
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics\n",
        ),
        Route::MethodNotAllowed => {
            let mut r = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed: GET /metrics\n",
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
        Route::Metrics => match metrics.render().await {
            Ok(body) => {
                let mut r = Response::new(Full::new(body));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(super::encode::CONTENT_TYPE),
                );
                r
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not render the metrics");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the metrics could not be rendered; the daemon's log says why\n",
                )
            }
        },
    }
}

/// Serves one connection until the client is done, a limit closes it or the daemon stops.
/// `_slot` is its place under [`MAX_CONNECTIONS`], given back when this returns.
pub async fn connection(
    metrics: Arc<Metrics>,
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    cancel: CancellationToken,
) {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let metrics = metrics.clone();
        async move { Ok::<_, Infallible>(respond(&metrics, &req).await) }
    });
    let conn = builder().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        ended = conn => {
            if let Err(e) = ended {
                // Timeouts, oversized heads and clients that hang up: theirs, not ours.
                tracing::debug!(error = %e, "metrics connection closed");
            }
        }
        _ = tokio::time::sleep(CONNECTION_DEADLINE) => {
            tracing::debug!("metrics connection closed at its deadline");
        }
        _ = cancel.cancelled() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_and_head_of_metrics_are_served() {
        assert_eq!(route(&Method::GET, "/metrics"), Route::Metrics);
        assert_eq!(route(&Method::HEAD, "/metrics"), Route::Metrics);
        assert_eq!(route(&Method::POST, "/metrics"), Route::MethodNotAllowed);
        assert_eq!(route(&Method::DELETE, "/metrics"), Route::MethodNotAllowed);
        assert_eq!(route(&Method::GET, "/"), Route::NotFound);
        assert_eq!(route(&Method::GET, "/metrics/"), Route::NotFound);
        assert_eq!(route(&Method::POST, "/other"), Route::NotFound);
    }

    #[test]
    fn the_limits_fit_hyper_and_each_other() {
        // hyper panics below its 8 KiB floor; a head must fit the buffer to be read whole.
        const { assert!(MAX_BUF_BYTES >= 8 * 1024) };
        const { assert!(MAX_HEADER_BYTES <= MAX_BUF_BYTES) };
        assert!(HEADER_READ_TIMEOUT < CONNECTION_DEADLINE);
        // Would panic on a bad limit (or a timeout without a timer).
        let _ = builder();
    }
}
