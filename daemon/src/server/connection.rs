//! One client connection: handshake, then requests answered in order until the client leaves,
//! goes idle, sends garbage, or the daemon stops. Bad input ends this connection with a `Fatal`
//! error frame and never affects another client.

use super::auth;
use super::dispatch::dispatch;
use super::handlers::{After, Reply, StreamItem};
use crate::context::Context;
use crate::error::Error;
use backupd_common::codec::{FrameError, MessageCodec};
use backupd_common::error::{ErrorCode, ErrorReply};
use backupd_common::ids::RequestId;
use backupd_common::protocol::{
    ClientMessage, Identity, Request, ServerMessage, Welcome, PROTOCOL_VERSION,
};
use futures::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

type ServerCodec = MessageCodec<ClientMessage, ServerMessage>;
type Conn = Framed<UnixStream, ServerCodec>;

/// A peer that does not read its replies gets this long before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one connection; `_slot` is its place under the connection cap.
pub async fn serve(
    ctx: Arc<Context>,
    stream: UnixStream,
    cancel: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let Some(identity) = auth::identify(&ctx, &stream) else {
        tracing::warn!("peer credentials unavailable; closing the connection");
        return;
    };
    let server = ctx.settings().config.server.clone();
    let mut conn = Framed::new(stream, ServerCodec::new(server.max_frame_bytes));

    let hello = tokio::select! {
        _ = cancel.cancelled() => return,
        next = tokio::time::timeout(server.handshake_timeout, conn.next()) => next,
    };
    match hello {
        Err(_) => {
            let msg = format!(
                "no Hello within {:?}; closing the connection",
                server.handshake_timeout
            );
            return fatal(&mut conn, ErrorCode::Timeout, msg).await;
        }
        Ok(None) => return,
        Ok(Some(Err(e))) => return fatal_frame(&mut conn, e).await,
        Ok(Some(Ok(ClientMessage::Hello(hello)))) => {
            if hello.protocol_version != PROTOCOL_VERSION {
                let msg = format!(
                    "protocol version mismatch: client {:?} speaks version {}, backupd {} speaks \
                     version {}; use a backupctl from the same release as the daemon",
                    hello.client,
                    hello.protocol_version,
                    backupd_common::VERSION,
                    PROTOCOL_VERSION
                );
                return fatal(&mut conn, ErrorCode::VersionMismatch, msg).await;
            }
            tracing::debug!(uid = identity.uid, pid = ?identity.pid, client = %hello.client, "client connected");
        }
        Ok(Some(Ok(ClientMessage::Request { .. }))) => {
            let msg = "the first message must be Hello; see docs/PROTOCOL.md".to_owned();
            return fatal(&mut conn, ErrorCode::Malformed, msg).await;
        }
    }
    let welcome = ServerMessage::Welcome(Welcome {
        protocol_version: PROTOCOL_VERSION,
        daemon_version: backupd_common::VERSION.to_owned(),
        identity: identity.clone(),
    });
    if send(&mut conn, welcome).await.is_err() {
        return;
    }

    loop {
        let idle = ctx.settings().config.server.idle_timeout;
        let next = tokio::select! {
            _ = cancel.cancelled() => return,
            next = tokio::time::timeout(idle, conn.next()) => next,
        };
        match next {
            Err(_) => {
                let msg = format!("idle for {idle:?}; closing the connection");
                return fatal(&mut conn, ErrorCode::Timeout, msg).await;
            }
            Ok(None) => return,
            Ok(Some(Err(e))) => return fatal_frame(&mut conn, e).await,
            Ok(Some(Ok(ClientMessage::Hello(_)))) => {
                let msg = "Hello sent twice on one connection".to_owned();
                return fatal(&mut conn, ErrorCode::Malformed, msg).await;
            }
            Ok(Some(Ok(ClientMessage::Request { id, request }))) => {
                match answer(&ctx, &identity, &mut conn, id, request, &cancel).await {
                    Ok(Some(After::Shutdown)) => {
                        ctx.shutdown.cancel();
                        return;
                    }
                    Ok(None) => {}
                    Err(()) => return,
                }
            }
        }
    }
}

/// Checks, dispatches and answers one request. `Err` means the connection is unusable.
async fn answer(
    ctx: &Arc<Context>,
    identity: &Identity,
    conn: &mut Conn,
    id: RequestId,
    request: Request,
    cancel: &CancellationToken,
) -> Result<Option<After>, ()> {
    if let Err(denied) = auth::check(identity, &request) {
        tracing::info!(
            uid = identity.uid,
            request = request.name(),
            "permission denied"
        );
        let result = Err(denied.to_reply());
        send(conn, ServerMessage::Reply { id, result }).await?;
        return Ok(None);
    }
    let outcome = dispatch(ctx, identity, request).await;
    match outcome.reply {
        Reply::Now(result) => send(conn, ServerMessage::Reply { id, result }).await?,
        Reply::Stream(mut rx) => loop {
            let item = tokio::select! {
                _ = cancel.cancelled() => None,
                item = rx.recv() => item,
            };
            match item {
                Some(StreamItem::Progress(progress)) => {
                    send(conn, ServerMessage::Progress { id, progress }).await?
                }
                Some(StreamItem::Final(result)) => {
                    send(conn, ServerMessage::Reply { id, result }).await?;
                    break;
                }
                None => {
                    let result = Err(if cancel.is_cancelled() {
                        Error::ShuttingDown.to_reply()
                    } else {
                        Error::Internal("the operation ended without a result".into()).to_reply()
                    });
                    send(conn, ServerMessage::Reply { id, result }).await?;
                    break;
                }
            }
        },
    }
    Ok(outcome.after)
}

async fn send(conn: &mut Conn, message: ServerMessage) -> Result<(), ()> {
    match tokio::time::timeout(WRITE_TIMEOUT, conn.send(message)).await {
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

async fn fatal(conn: &mut Conn, code: ErrorCode, message: String) {
    tracing::debug!(%code, %message, "closing connection");
    let _ = send(conn, ServerMessage::Fatal(ErrorReply::new(code, message))).await;
}

async fn fatal_frame(conn: &mut Conn, error: FrameError) {
    let code = match &error {
        FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
        FrameError::Io(_) => return, // the peer is gone or the socket broke: nobody to tell
        FrameError::Malformed(_) | FrameError::Encode(_) => ErrorCode::Malformed,
    };
    fatal(conn, code, error.to_string()).await;
}

/// Tells a client over the connection cap to come back later, then closes.
pub async fn refuse_busy(stream: UnixStream, max: usize) {
    let mut conn = Framed::new(
        stream,
        ServerCodec::new(backupd_common::codec::DEFAULT_MAX_FRAME),
    );
    let mut reply = ErrorReply::new(
        ErrorCode::Busy,
        format!("backupd is serving its maximum of {max} connections (server.max_connections); try again shortly"),
    );
    reply.retry_after_ms = Some(1000);
    let _ = send(&mut conn, ServerMessage::Fatal(reply)).await;
}
