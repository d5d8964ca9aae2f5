//! A client connection: connect, Hello/Welcome, then requests answered in order. Used by
//! backupctl, the end-to-end tests and the benchmarks; it knows nothing of commands or output.

use crate::codec::{FrameError, MessageCodec, DEFAULT_MAX_FRAME};
use crate::error::ErrorReply;
use crate::ids::RequestId;
use crate::protocol::{
    ClientMessage, Hello, Progress, Request, Response, ServerMessage, Welcome, PROTOCOL_VERSION,
};
use futures::{SinkExt, StreamExt};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::UnixStream;
use tokio_util::codec::Framed;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket (missing file, refused connection).
    #[error("no daemon answers on {path}: {source}")]
    Unreachable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The socket exists but this user may not open it.
    #[error("not allowed to connect to {path}: {source}")]
    SocketPermission {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("connection to the daemon failed: {0}")]
    Frame(#[from] FrameError),
    #[error("the daemon closed the connection before answering")]
    Closed,
    #[error("the daemon sent an unexpected message: {0}")]
    Unexpected(String),
    /// The daemon answered with an error.
    #[error("{0}")]
    Remote(ErrorReply),
}

pub type ClientCodec = MessageCodec<ServerMessage, ClientMessage>;

/// How long a client whose write failed waits for the daemon's last frame.
const LAST_WORD_WAIT: Duration = Duration::from_secs(2);

/// Sends a message. When the write fails (the daemon closed the connection: connection cap,
/// timeout, malformed input), the daemon usually said why in a `Fatal` frame that is still
/// waiting to be read; that reason is the error, not the write's "Broken pipe".
async fn send_or_last_word(
    framed: &mut Framed<UnixStream, ClientCodec>,
    message: ClientMessage,
) -> Result<(), ClientError> {
    let Err(write_error) = framed.send(message).await else {
        return Ok(());
    };
    match tokio::time::timeout(LAST_WORD_WAIT, framed.next()).await {
        Ok(Some(Ok(ServerMessage::Fatal(e)))) => Err(ClientError::Remote(e)),
        _ => Err(write_error.into()),
    }
}

#[derive(Debug)]
pub struct Connection {
    framed: Framed<UnixStream, ClientCodec>,
    welcome: Welcome,
    next_id: u64,
}

impl Connection {
    /// Connects and completes the handshake. `client` names the program, e.g. `backupctl 0.1.0`.
    pub async fn connect(path: &Path, client: &str) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path).await.map_err(|source| {
            let path = path.to_owned();
            match source.kind() {
                io::ErrorKind::PermissionDenied => ClientError::SocketPermission { path, source },
                _ => ClientError::Unreachable { path, source },
            }
        })?;
        Self::handshake(stream, client, PROTOCOL_VERSION).await
    }

    /// Handshake with an explicit protocol version (tests use it to provoke a mismatch).
    pub async fn handshake(
        stream: UnixStream,
        client: &str,
        protocol_version: u32,
    ) -> Result<Self, ClientError> {
        let mut framed = Framed::new(stream, ClientCodec::new(DEFAULT_MAX_FRAME));
        let hello = ClientMessage::Hello(Hello {
            protocol_version,
            client: client.to_owned(),
        });
        send_or_last_word(&mut framed, hello).await?;
        match framed.next().await {
            Some(Ok(ServerMessage::Welcome(welcome))) => Ok(Self {
                framed,
                welcome,
                next_id: 1,
            }),
            Some(Ok(ServerMessage::Fatal(e))) => Err(ClientError::Remote(e)),
            Some(Ok(other)) => Err(ClientError::Unexpected(format!("{other:?}"))),
            Some(Err(e)) => Err(e.into()),
            None => Err(ClientError::Closed),
        }
    }

    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// Sends a request and waits for its final reply, ignoring progress frames.
    pub async fn call(&mut self, request: Request) -> Result<Response, ClientError> {
        self.call_streaming(request, |_| {}).await
    }

    /// Sends a request, hands every progress frame to `on_progress`, returns the final reply.
    pub async fn call_streaming(
        &mut self,
        request: Request,
        mut on_progress: impl FnMut(Progress),
    ) -> Result<Response, ClientError> {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        send_or_last_word(&mut self.framed, ClientMessage::Request { id, request }).await?;
        loop {
            match self.framed.next().await {
                Some(Ok(ServerMessage::Progress { id: got, progress })) if got == id => {
                    on_progress(progress)
                }
                Some(Ok(ServerMessage::Reply { id: got, result })) if got == id => {
                    return result.map_err(ClientError::Remote)
                }
                Some(Ok(ServerMessage::Fatal(e))) => return Err(ClientError::Remote(e)),
                Some(Ok(other)) => return Err(ClientError::Unexpected(format!("{other:?}"))),
                Some(Err(e)) => return Err(e.into()),
                None => return Err(ClientError::Closed),
            }
        }
    }
}
