//! A client connection: connect, Hello/Welcome, then requests answered in order. Used by
//! backupctl, the end-to-end tests and the benchmarks; it knows nothing of commands or output.

use crate::codec::{self, FrameError, MessageCodec, DEFAULT_MAX_FRAME};
use crate::error::ErrorReply;
use crate::ids::RequestId;
use crate::protocol::{
    ClientMessage, Hello, Progress, Request, Response, ServerMessage, Welcome, PROTOCOL_VERSION,
};
use futures::{SinkExt, StreamExt};
use std::io;
use std::ops::ControlFlow;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncWriteExt, Interest};
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
    /// The process listening on the socket runs as a uid the caller does not trust: neither
    /// root, nor the caller, nor an owner the caller named. Nothing was sent to it.
    #[error(
        "refusing the daemon on {path}: it runs as {owner}, which is neither root nor you (uid \
         {caller}); another user may have put a fake daemon there to catch what you send \
         (passphrases). If you trust it, name its owner: `backupctl --socket {path} \
         --socket-owner {owner_arg} ...`",
        path = path.display(),
        owner = user_label(*uid),
        owner_arg = user_name(*uid).unwrap_or_else(|| uid.to_string()),
    )]
    UntrustedDaemon {
        path: PathBuf,
        /// The listener's uid (SO_PEERCRED).
        uid: u32,
        /// The caller's uid.
        caller: u32,
    },
    /// The daemon answered with an error.
    #[error("{0}")]
    Remote(ErrorReply),
}

/// The group name of `gid`, if the system knows one.
pub fn group_name(gid: u32) -> Option<String> {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
}

/// The user name of `uid`, if the system knows one.
pub fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// A user given as a name the system knows or as a numeric uid (`--socket-owner`).
pub fn parse_user(text: &str) -> Result<u32, String> {
    if let Ok(uid) = text.parse::<u32>() {
        return Ok(uid);
    }
    match nix::unistd::User::from_name(text) {
        Ok(Some(user)) => Ok(user.uid.as_raw()),
        Ok(None) => Err(format!(
            "no user {text:?} on this system; give a user name or a uid"
        )),
        Err(e) => Err(format!("cannot look up user {text:?}: {e}")),
    }
}

/// A group name or gid, as `--group` and `[[security.binding]] group` take it.
pub fn parse_group(text: &str) -> Result<u32, String> {
    if let Ok(gid) = text.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(text) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => Err(format!(
            "no group {text:?} on this system; give a group name or a gid"
        )),
        Err(e) => Err(format!("cannot look up group {text:?}: {e}")),
    }
}

/// `uid 65534 (nobody)`, or `uid 4242` for a uid without a name.
fn user_label(uid: u32) -> String {
    match user_name(uid) {
        Some(name) => format!("uid {uid} ({name})"),
        None => format!("uid {uid}"),
    }
}

/// Which daemons a client talks to, by the uid the kernel reports for the process listening on
/// the socket (SO_PEERCRED, which the listener cannot forge). Root's daemon and the caller's own
/// are always trusted; any other uid only when the caller names it. This keeps a client whose
/// socket directory another user squatted (`/tmp/backupd-UID` without `XDG_RUNTIME_DIR`) from
/// sending its Hello, and later its passphrases, to that user's fake daemon.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrustedDaemon {
    /// A further uid the caller trusts explicitly.
    pub also: Option<u32>,
}

impl TrustedDaemon {
    /// Whether a daemon running as `uid` may be talked to by a caller running as `caller`.
    pub fn accepts(self, uid: u32, caller: u32) -> bool {
        uid == 0 || uid == caller || self.also == Some(uid)
    }
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
    /// Connects to a daemon run by root or the caller and completes the handshake. `client`
    /// names the program, e.g. `backupctl 0.1.0`.
    pub async fn connect(path: &Path, client: &str) -> Result<Self, ClientError> {
        Self::connect_trusting(path, client, TrustedDaemon::default()).await
    }

    /// Connects, checks that the listener runs as a uid `trusted` accepts (before a single byte
    /// is sent), and completes the handshake.
    pub async fn connect_trusting(
        path: &Path,
        client: &str,
        trusted: TrustedDaemon,
    ) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path).await.map_err(|source| {
            let path = path.to_owned();
            match source.kind() {
                io::ErrorKind::PermissionDenied => ClientError::SocketPermission { path, source },
                _ => ClientError::Unreachable { path, source },
            }
        })?;
        let uid = stream
            .peer_cred()
            .map_err(|source| ClientError::Unreachable {
                path: path.to_owned(),
                source,
            })?
            .uid();
        let caller = nix::unistd::geteuid().as_raw();
        if !trusted.accepts(uid, caller) {
            return Err(ClientError::UntrustedDaemon {
                path: path.to_owned(),
                uid,
                caller,
            });
        }
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
        let id = self.next_request_id();
        send_or_last_word(&mut self.framed, ClientMessage::Request { id, request }).await?;
        let done = self
            .receive(id, |p| {
                on_progress(p);
                ControlFlow::Continue(())
            })
            .await?;
        done.ok_or(ClientError::Closed)
    }

    /// As [`Connection::call_streaming`], but `on_progress` may stop early (`Break`, e.g. the
    /// reader of `backupctl cat` went away): `Ok(None)` then, and the connection is left in the
    /// middle of a reply, so the caller drops it; the daemon sees it close and stops.
    pub async fn call_streaming_until(
        &mut self,
        request: Request,
        on_progress: impl FnMut(Progress) -> ControlFlow<()>,
    ) -> Result<Option<Response>, ClientError> {
        let id = self.next_request_id();
        send_or_last_word(&mut self.framed, ClientMessage::Request { id, request }).await?;
        self.receive(id, on_progress).await
    }

    /// As [`Connection::call_streaming`], passing `fds` with the request's frame (`SCM_RIGHTS`
    /// on its first byte; docs/PROTOCOL.md, "Passing files"). The daemon gets the open files
    /// themselves, with the access this process opened them with, and no path.
    pub async fn call_passing(
        &mut self,
        request: Request,
        fds: &[BorrowedFd<'_>],
        on_progress: impl FnMut(Progress),
    ) -> Result<Response, ClientError> {
        let id = self.next_request_id();
        let payload = codec::encode_payload(&ClientMessage::Request { id, request })?;
        let len = u32::try_from(payload.len())
            .map_err(|_| FrameError::Encode("request too large for a frame".into()))?;
        let mut frame = Vec::with_capacity(4 + payload.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&payload);
        if let Err(write_error) = self.send_passing(&frame, fds).await {
            // As in `send_or_last_word`: the daemon's reason beats "Broken pipe".
            return match tokio::time::timeout(LAST_WORD_WAIT, self.framed.next()).await {
                Ok(Some(Ok(ServerMessage::Fatal(e)))) => Err(ClientError::Remote(e)),
                _ => Err(FrameError::Io(write_error).into()),
            };
        }
        let mut on_progress = on_progress;
        let done = self
            .receive(id, |p| {
                on_progress(p);
                ControlFlow::Continue(())
            })
            .await?;
        done.ok_or(ClientError::Closed)
    }

    /// Writes `frame` with `fds` attached to its first bytes, then the rest of it. The codec's
    /// write buffer is empty here: every earlier message was flushed whole.
    async fn send_passing(&mut self, frame: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
        let stream = self.framed.get_ref();
        let sent = loop {
            stream.writable().await?;
            let attempt = stream.try_io(Interest::WRITABLE, || {
                let mut space = vec![std::mem::MaybeUninit::uninit(); fds_space(fds.len())];
                let mut control = SendAncillaryBuffer::new(&mut space);
                if !control.push(SendAncillaryMessage::ScmRights(fds)) {
                    return Err(io::Error::other("too many descriptors for one message"));
                }
                rustix::net::sendmsg(
                    stream,
                    &[io::IoSlice::new(frame)],
                    &mut control,
                    SendFlags::NOSIGNAL,
                )
                .map_err(io::Error::from)
            });
            match attempt {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        };
        let stream = self.framed.get_mut();
        stream.write_all(&frame[sent..]).await?;
        stream.flush().await
    }

    fn next_request_id(&mut self) -> RequestId {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Progress frames of request `id` to `on_progress` until its final reply (`None`: the
    /// callback stopped first).
    async fn receive(
        &mut self,
        id: RequestId,
        mut on_progress: impl FnMut(Progress) -> ControlFlow<()>,
    ) -> Result<Option<Response>, ClientError> {
        loop {
            match self.framed.next().await {
                Some(Ok(ServerMessage::Progress { id: got, progress })) if got == id => {
                    if on_progress(progress).is_break() {
                        return Ok(None);
                    }
                }
                Some(Ok(ServerMessage::Reply { id: got, result })) if got == id => {
                    return result.map(Some).map_err(ClientError::Remote)
                }
                Some(Ok(ServerMessage::Fatal(e))) => return Err(ClientError::Remote(e)),
                Some(Ok(other)) => return Err(ClientError::Unexpected(format!("{other:?}"))),
                Some(Err(e)) => return Err(e.into()),
                None => return Err(ClientError::Closed),
            }
        }
    }
}

/// Control-message space for `n` descriptors.
fn fds_space(n: usize) -> usize {
    rustix::cmsg_space!(ScmRights(n))
}

#[cfg(test)]
mod tests {
    use super::TrustedDaemon;

    #[test]
    fn only_root_the_caller_and_a_named_owner_are_trusted() {
        let default = TrustedDaemon::default();
        assert!(default.accepts(0, 1000));
        assert!(default.accepts(1000, 1000));
        assert!(!default.accepts(65534, 1000));
        let named = TrustedDaemon { also: Some(65534) };
        assert!(named.accepts(65534, 1000));
        assert!(!named.accepts(4242, 1000));
        // Root trusts root's daemon and nobody else's by default.
        assert!(!default.accepts(1000, 0));
    }
}
