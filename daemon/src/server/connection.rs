//! One client connection: handshake, then requests answered in order until the client leaves,
//! goes idle, sends garbage, or the daemon stops. Bad input ends this connection with a `Fatal`
//! error frame and never affects another client.
//!
//! The connection keeps reading while it streams a reply (`events --follow`, `queue wait`,
//! `system health --watch`): a client that leaves is noticed at once, the stream's task is
//! stopped (its receiver is dropped) and the connection's slot is freed. Requests sent ahead
//! during a stream wait in a short queue; a client that sends more than [`MAX_AHEAD`] is closed.
//!
//! Frames are limited to 64 KiB before `Hello` and for non-admin callers; replies to non-admin
//! callers pass through [`redact`] (no job arguments, results or error texts).

use super::dispatch::dispatch;
use super::frames::{self, FrameReader, Passed, ReadError};
use super::handlers::{After, Reply, StreamItem};
use super::redact;
use super::slots::{Refusal, Slot};
use super::Server;
use crate::error::Error;
use crate::security::Outcome;
use backupd_common::codec::{MessageCodec, RESTRICTED_MAX_FRAME};
use backupd_common::error::{ErrorCode, ErrorReply};
use backupd_common::ids::RequestId;
use backupd_common::protocol::{
    ClientMessage, Identity, Request, ServerMessage, Welcome, PROTOCOL_VERSION,
};
use futures::SinkExt;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio_util::codec::FramedWrite;
use tokio_util::sync::CancellationToken;

type ServerCodec = MessageCodec<ClientMessage, ServerMessage>;
type Writer = FramedWrite<OwnedWriteHalf, ServerCodec>;

/// A peer that does not read its replies gets this long before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests a client may send ahead while a streamed reply is in progress.
const MAX_AHEAD: usize = 16;
/// Client-supplied text (the `Hello` client name) is cut to this many characters in logs and
/// replies.
const PEER_TEXT_MAX: usize = 64;

/// Client-supplied text as it may appear in a log line or a reply: control characters and
/// newlines escaped (no forged log lines) and cut to [`PEER_TEXT_MAX`] characters (no log
/// flooding from one frame).
pub fn peer_text(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(PEER_TEXT_MAX)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(PEER_TEXT_MAX).is_some() {
        out.push_str("...");
    }
    out
}

struct Conn {
    reader: FrameReader,
    writer: Writer,
    /// Requests received while a streamed reply was in progress (with the descriptors passed
    /// with them), answered next.
    ahead: VecDeque<(ClientMessage, Passed)>,
}

/// Serves one connection from `identity`; `_slot` is its place under the connection caps.
pub async fn serve(
    server: Arc<Server>,
    stream: UnixStream,
    identity: Identity,
    cancel: CancellationToken,
    _slot: Slot,
) {
    let limits = server.services.settings.get().config.server.clone();
    let (read, write) = stream.into_split();
    let mut conn = Conn {
        reader: FrameReader::new(read, RESTRICTED_MAX_FRAME, server.frame_budget.clone()),
        writer: FramedWrite::new(write, ServerCodec::new(limits.max_frame_bytes)),
        ahead: VecDeque::new(),
    };

    let hello = tokio::select! {
        _ = cancel.cancelled() => return,
        next = tokio::time::timeout(limits.handshake_timeout, read_message(&mut conn.reader)) => next,
    };
    match hello {
        Err(_) => {
            let msg = format!(
                "no Hello within {:?}; closing the connection",
                limits.handshake_timeout
            );
            server.services.security.handshake_failed(&identity, &msg);
            return fatal(&mut conn.writer, ErrorCode::Timeout, msg).await;
        }
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            if !matches!(e, ReadError::Io(_)) {
                server
                    .services
                    .security
                    .handshake_failed(&identity, &e.to_string());
            }
            return fatal_read(&mut conn.writer, e).await;
        }
        Ok(Ok(Some((ClientMessage::Hello(hello), _)))) => {
            let client = peer_text(&hello.client);
            if hello.protocol_version != PROTOCOL_VERSION {
                let msg = format!(
                    "protocol version mismatch: client \"{client}\" speaks version {}, backupd {} \
                     speaks version {}; use a backupctl from the same release as the daemon",
                    hello.protocol_version,
                    backupd_common::VERSION,
                    PROTOCOL_VERSION
                );
                server.services.security.handshake_failed(&identity, &msg);
                return fatal(&mut conn.writer, ErrorCode::VersionMismatch, msg).await;
            }
            tracing::debug!(uid = identity.uid, pid = ?identity.pid, %client, "client connected");
        }
        Ok(Ok(Some((ClientMessage::Request { .. }, _)))) => {
            let msg = "the first message must be Hello; see docs/PROTOCOL.md".to_owned();
            server.services.security.handshake_failed(&identity, &msg);
            return fatal(&mut conn.writer, ErrorCode::Malformed, msg).await;
        }
    }
    if crate::security::administers(identity.role) {
        conn.reader.set_limit(limits.max_frame_bytes);
    }
    let welcome = ServerMessage::Welcome(Welcome {
        protocol_version: PROTOCOL_VERSION,
        daemon_version: backupd_common::VERSION.to_owned(),
        identity: identity.clone(),
    });
    if send(&mut conn.writer, welcome).await.is_err() {
        return;
    }

    loop {
        let message = match conn.ahead.pop_front() {
            Some(m) => m,
            None => {
                let idle = server.services.settings.get().config.server.idle_timeout;
                let next = tokio::select! {
                    _ = cancel.cancelled() => return,
                    next = tokio::time::timeout(idle, read_message(&mut conn.reader)) => next,
                };
                match next {
                    Err(_) => {
                        let msg = format!("idle for {idle:?}; closing the connection");
                        return fatal(&mut conn.writer, ErrorCode::Timeout, msg).await;
                    }
                    Ok(Ok(None)) => return,
                    Ok(Err(e)) => return fatal_read(&mut conn.writer, e).await,
                    Ok(Ok(Some(m))) => m,
                }
            }
        };
        let (message, passed) = message;
        match message {
            ClientMessage::Hello(_) => {
                let msg = "Hello sent twice on one connection".to_owned();
                return fatal(&mut conn.writer, ErrorCode::Malformed, msg).await;
            }
            ClientMessage::Request { id, request } => {
                let request = super::passing::accept(request, passed);
                match answer(&server, &identity, &mut conn, id, request, &cancel).await {
                    Ok(Some(After::Shutdown)) => {
                        server.services.shutdown.cancel();
                        return;
                    }
                    Ok(None) => {}
                    Err(()) => return,
                }
            }
        }
    }
}

/// The next decoded message and the descriptors passed with it; `Ok(None)` when the client
/// closed its side.
async fn read_message(
    reader: &mut FrameReader,
) -> Result<Option<(ClientMessage, Passed)>, ReadError> {
    match reader.next_frame().await? {
        None => Ok(None),
        Some(frame) => decode_passing(frame).await.map(Some),
    }
}

async fn decode_passing(mut frame: frames::RawFrame) -> Result<(ClientMessage, Passed), ReadError> {
    let passed = frame.take_fds();
    Ok((frames::decode(frame).await?, passed))
}

/// Checks, dispatches and answers one request (with the descriptors it carries, which are
/// closed unused when it is denied). `Err` means the connection is unusable.
async fn answer(
    server: &Arc<Server>,
    identity: &Identity,
    conn: &mut Conn,
    id: RequestId,
    (request, passed): (Request, Passed),
    cancel: &CancellationToken,
) -> Result<Option<After>, ()> {
    let security = server.services.security.clone();
    if let Err(denied) = security.authorize(identity, &request) {
        tracing::info!(
            uid = identity.uid,
            request = request.name(),
            "permission denied"
        );
        let reply = denied.to_reply();
        security.after_request(identity, &request, Outcome::Denied(&reply));
        let result = Err(reply);
        send(&mut conn.writer, ServerMessage::Reply { id, result }).await?;
        return Ok(None);
    }
    // The role in force now, not the one the connection began with: a binding granted,
    // revoked or expired since then decides what this reply shows and whose snapshots it sees.
    let identity = &Identity {
        role: security.role_of(identity.uid),
        ..identity.clone()
    };
    let reader = redact::Reader::of(identity);
    // The request moves into its handler; what the security service records is read from a copy.
    let seen = request.clone();
    let outcome = dispatch(server, identity, request, passed).await;
    match outcome.reply {
        Reply::Now(result) => {
            security.after_request(identity, &seen, Outcome::Answered(&result));
            send(&mut conn.writer, final_reply(id, result, reader)).await?;
        }
        Reply::Stream(mut rx) => loop {
            let item = tokio::select! {
                _ = cancel.cancelled() => None,
                item = rx.recv() => item,
                read = conn.reader.next_frame() => {
                    // Returning drops `rx`, which stops the stream's task.
                    read_during_stream(conn, read).await?;
                    continue;
                }
            };
            match item {
                Some(StreamItem::Progress(mut progress)) => {
                    redact::progress(&mut progress, reader);
                    send(&mut conn.writer, ServerMessage::Progress { id, progress }).await?
                }
                Some(StreamItem::Final(result)) => {
                    security.after_request(identity, &seen, Outcome::Answered(&result));
                    send(&mut conn.writer, final_reply(id, result, reader)).await?;
                    break;
                }
                None => {
                    security.after_request(identity, &seen, Outcome::Cut);
                    let result = Err(if cancel.is_cancelled() {
                        Error::ShuttingDown.to_reply()
                    } else {
                        Error::Internal("the operation ended without a result".into()).to_reply()
                    });
                    send(&mut conn.writer, ServerMessage::Reply { id, result }).await?;
                    break;
                }
            }
        },
    }
    Ok(outcome.after)
}

fn final_reply(
    id: RequestId,
    mut result: Result<backupd_common::protocol::Response, ErrorReply>,
    reader: redact::Reader,
) -> ServerMessage {
    if let Ok(response) = &mut result {
        redact::response(response, reader);
    }
    ServerMessage::Reply { id, result }
}

/// Handles what the client sent while a reply streams: a request is queued for later; the end
/// of the stream, an error or too many requests ahead end the connection (`Err`).
async fn read_during_stream(
    conn: &mut Conn,
    read: Result<Option<frames::RawFrame>, ReadError>,
) -> Result<(), ()> {
    let frame = match read {
        Ok(Some(frame)) => frame,
        Ok(None) => {
            tracing::debug!("client left during a streamed reply; stopping the stream");
            return Err(());
        }
        Err(e) => {
            fatal_read(&mut conn.writer, e).await;
            return Err(());
        }
    };
    match decode_passing(frame).await {
        Ok(message) if conn.ahead.len() < MAX_AHEAD => {
            conn.ahead.push_back(message);
            Ok(())
        }
        Ok(_) => {
            let msg = format!(
                "more than {MAX_AHEAD} requests sent while a streamed reply was in progress; \
                 wait for replies before sending more"
            );
            fatal(&mut conn.writer, ErrorCode::Busy, msg).await;
            Err(())
        }
        Err(e) => {
            fatal_read(&mut conn.writer, e).await;
            Err(())
        }
    }
}

async fn send(writer: &mut Writer, message: ServerMessage) -> Result<(), ()> {
    match tokio::time::timeout(WRITE_TIMEOUT, writer.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "cannot write to client; closing the connection");
            Err(())
        }
        Err(_) => {
            tracing::debug!("client does not read its replies; closing the connection");
            Err(())
        }
    }
}

async fn fatal(writer: &mut Writer, code: ErrorCode, message: String) {
    tracing::debug!(%code, message = %peer_text(&message), "closing connection");
    let _ = send(writer, ServerMessage::Fatal(ErrorReply::new(code, message))).await;
}

async fn fatal_read(writer: &mut Writer, error: ReadError) {
    let (code, message) = match &error {
        ReadError::TooLarge { .. } => (ErrorCode::FrameTooLarge, error.to_string()),
        ReadError::Busy { .. } => {
            let mut reply = ErrorReply::new(ErrorCode::Busy, error.to_string());
            reply.retry_after_ms = Some(1000);
            tracing::debug!(message = %reply.message, "closing connection");
            let _ = send(writer, ServerMessage::Fatal(reply)).await;
            return;
        }
        ReadError::Malformed(_) => (ErrorCode::Malformed, error.to_string()),
        ReadError::Io(_) => return, // the peer is gone or the socket broke: nobody to tell
    };
    fatal(writer, code, message).await;
}

/// Tells a client over a connection cap which cap and to come back later, then closes.
pub async fn refuse(stream: UnixStream, refusal: Refusal) {
    let (_read, write) = stream.into_split();
    let mut writer = FramedWrite::new(write, ServerCodec::new(RESTRICTED_MAX_FRAME));
    let mut reply = ErrorReply::new(ErrorCode::Busy, refusal.to_string());
    reply.retry_after_ms = Some(1000);
    let _ = send(&mut writer, ServerMessage::Fatal(reply)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_text_escapes_newlines_and_cuts_long_names() {
        let forged = "backupctl\n2024-01-01T00:00:00Z  INFO backupd: root logged in";
        let shown = peer_text(forged);
        assert!(!shown.contains('\n'), "{shown}");
        assert!(shown.starts_with("backupctl\\n"), "{shown}");
        let long = "x".repeat(16 * 1024 * 1024);
        assert_eq!(peer_text(&long).len(), PEER_TEXT_MAX + 3);
    }
}
