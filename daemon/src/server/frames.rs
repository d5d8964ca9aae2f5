//! Reading client frames within limits: a per-connection frame size limit (64 KiB until the
//! caller is known to be an admin) and a daemon-wide budget of bytes held in partly received
//! frames, so a crowd of clients each sending half a large frame cannot make the daemon buffer
//! more than `server.frame_budget_bytes` between them.
//!
//! [`FrameReader::next_frame`] is cancel-safe: the connection polls it beside a streamed reply,
//! and every partial state (bytes read so far, budget granted, budget wait deadline) lives in
//! the reader, not in the future. Decoding is [`decode`]'s job: small frames inline, large ones
//! on the blocking pool so a big submission never stalls the async workers.
//!
//! Every read is a `recvmsg` with room for [`MAX_PASSED_FDS`] descriptors: a client may pass
//! open files with a frame (`SCM_RIGHTS`, docs/PROTOCOL.md, "Passing files"). Descriptors that
//! arrive while a frame is read belong to that frame ([`RawFrame::take_fds`]); they are received
//! close-on-exec, and whatever the request does not take is closed when the frame is dropped.
//! More than fit in one message are closed by the kernel and the frame is marked so.

use backupd_common::codec::{self, Claim, FrameError, UNBUDGETED_FRAME};
use backupd_common::protocol::ClientMessage;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::unix::OwnedReadHalf;
use tokio::net::UnixStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::bytes::BytesMut;

/// How long a frame may wait for its share of the budget before the connection gets `Busy`.
const BUDGET_WAIT: Duration = Duration::from_secs(5);
/// Frames larger than this are decoded on the blocking pool.
const INLINE_DECODE: usize = 64 * 1024;
/// Most bytes one read asks for.
const READ_WINDOW: usize = 256 * 1024;
/// Descriptors one frame may carry; more are closed unread.
pub const MAX_PASSED_FDS: usize = backupd_common::protocol::FILE_CRYPT_DESCRIPTORS;

/// The daemon-wide budget of bytes in partly received frames (`server.frame_budget_bytes`).
#[derive(Debug)]
pub struct FrameBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

impl FrameBudget {
    pub fn new(total: usize) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(total.min(Semaphore::MAX_PERMITS))),
            total,
        }
    }

    /// Bytes currently lent to frames being received or decoded.
    pub fn in_use(&self) -> usize {
        self.total.saturating_sub(self.bytes.available_permits())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("frame of {len} bytes announced, the maximum for this connection is {max} bytes")]
    TooLarge { len: u64, max: usize },
    #[error(
        "backupd is receiving too much data at once (server.frame_budget_bytes) to accept a \
         {len}-byte frame; try again shortly"
    )]
    Busy { len: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<FrameError> for ReadError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::TooLarge { len, max } => Self::TooLarge { len, max },
            FrameError::Io(e) => Self::Io(e),
            FrameError::Malformed(m) | FrameError::Encode(m) => Self::Malformed(m),
        }
    }
}

/// A complete frame's payload, holding its share of the budget until it is decoded, and the
/// descriptors that came with it.
#[derive(Debug)]
pub struct RawFrame {
    payload: BytesMut,
    _budget: Option<OwnedSemaphorePermit>,
    fds: Passed,
}

impl RawFrame {
    /// The descriptors passed with this frame (closed when dropped).
    pub fn take_fds(&mut self) -> Passed {
        std::mem::take(&mut self.fds)
    }
}

/// Descriptors passed with one frame, in the order they were sent.
#[derive(Debug, Default)]
pub struct Passed {
    pub fds: Vec<OwnedFd>,
    /// The client sent more than [`MAX_PASSED_FDS`]: the kernel closed the rest.
    pub overflow: bool,
}

impl Passed {
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty() && !self.overflow
    }
}

/// The frame being received after its length prefix was read.
#[derive(Debug)]
struct Body {
    len: usize,
    budget: Option<OwnedSemaphorePermit>,
    /// When waiting for budget must end; kept here so that a cancelled wait resumes it.
    budget_deadline: Option<Instant>,
}

#[derive(Debug)]
pub struct FrameReader {
    half: OwnedReadHalf,
    /// The length prefix while it arrives, then the body; never more than one frame.
    buf: BytesMut,
    body: Option<Body>,
    limit: usize,
    budget: Arc<FrameBudget>,
    /// Descriptors received since the current frame began.
    fds: Passed,
}

impl FrameReader {
    pub fn new(half: OwnedReadHalf, limit: usize, budget: Arc<FrameBudget>) -> Self {
        Self {
            half,
            buf: BytesMut::new(),
            body: None,
            limit,
            budget,
            fds: Passed::default(),
        }
    }

    /// Changes the frame size limit for frames whose prefix has not been read yet.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// The next complete frame; `None` when the client closed its side (also mid-frame).
    /// Cancel-safe.
    pub async fn next_frame(&mut self) -> Result<Option<RawFrame>, ReadError> {
        loop {
            let Some(body) = &mut self.body else {
                if self.buf.len() >= 4 {
                    let prefix = self.buf.split_to(4);
                    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
                    let len = len as usize;
                    if len > self.limit {
                        return Err(ReadError::TooLarge {
                            len: len as u64,
                            max: self.limit,
                        });
                    }
                    self.body = Some(Body {
                        len,
                        budget: None,
                        budget_deadline: None,
                    });
                    continue;
                }
                if !self.fill(4 - self.buf.len()).await? {
                    return Ok(None);
                }
                continue;
            };
            let len = body.len;
            if len > UNBUDGETED_FRAME && body.budget.is_none() {
                if len > self.budget.total {
                    // Only possible when the limit exceeds the budget, which config validation
                    // refuses; say Busy rather than wait forever.
                    return Err(ReadError::Busy { len });
                }
                let deadline = *body
                    .budget_deadline
                    .get_or_insert_with(|| Instant::now() + BUDGET_WAIT);
                // `len` is at most the frame limit (≤ 256 MiB), so it fits a u32.
                let wanted = u32::try_from(len).map_err(|_| ReadError::Busy { len })?;
                let acquire = self.budget.bytes.clone().acquire_many_owned(wanted);
                match tokio::time::timeout_at(deadline, acquire).await {
                    Ok(Ok(permit)) => body.budget = Some(permit),
                    // The semaphore is never closed; treat it like an exhausted budget.
                    Ok(Err(_)) | Err(_) => return Err(ReadError::Busy { len }),
                }
                continue;
            }
            if self.buf.len() >= len {
                let payload = self.buf.split_to(len);
                let budget = self.body.take().and_then(|b| b.budget);
                return Ok(Some(RawFrame {
                    payload,
                    _budget: budget,
                    fds: std::mem::take(&mut self.fds),
                }));
            }
            let missing = len - self.buf.len();
            if !self.fill(missing).await? {
                return Ok(None);
            }
        }
    }

    /// Reads at most `want` more bytes into the buffer (never past the current frame, so the
    /// budget accounts for every buffered byte, and descriptors sent with the next frame stay
    /// with it); `false` at end of stream. Cancel-safe: the read happens in one synchronous step.
    async fn fill(&mut self, want: usize) -> io::Result<bool> {
        let stream: &UnixStream = self.half.as_ref();
        loop {
            stream.readable().await?;
            let (buf, fds) = (&mut self.buf, &mut self.fds);
            match stream.try_io(Interest::READABLE, || receive(stream, buf, want, fds)) {
                Ok(n) => return Ok(n > 0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// One `recvmsg` of at most `want` bytes appended to `buf`, with any descriptors appended to
/// `fds` (at most [`MAX_PASSED_FDS`] per frame; further ones are closed here).
fn receive(
    stream: &UnixStream,
    buf: &mut BytesMut,
    want: usize,
    fds: &mut Passed,
) -> io::Result<usize> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags};
    let mut space =
        [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_PASSED_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    // Zeroed room for what one call can bring (a socket buffer's worth), not for all of a large
    // frame at every call.
    let want = want.min(READ_WINDOW);
    let start = buf.len();
    buf.resize(start + want, 0);
    let received = rustix::net::recvmsg(
        stream,
        &mut [io::IoSliceMut::new(&mut buf[start..])],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    );
    let got = received.as_ref().map_or(0, |r| r.bytes);
    buf.truncate(start + got);
    let received = received?;
    if received.flags.contains(ReturnFlags::CTRUNC) {
        fds.overflow = true;
    }
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(passed) = message {
            for fd in passed {
                if fds.fds.len() < MAX_PASSED_FDS {
                    fds.fds.push(fd);
                } else {
                    fds.overflow = true;
                }
            }
        }
    }
    Ok(received.bytes)
}

/// Decodes a client message with the strict claim limit (see `codec::Claim::Strict`); large
/// frames are decoded on the blocking pool. The frame's budget share is returned afterwards.
pub async fn decode(frame: RawFrame) -> Result<ClientMessage, ReadError> {
    if frame.payload.len() <= INLINE_DECODE {
        return Ok(codec::decode_payload_with(&frame.payload, Claim::Strict)?);
    }
    let decoded = tokio::task::spawn_blocking(move || {
        codec::decode_payload_with(&frame.payload, Claim::Strict)
    })
    .await;
    match decoded {
        Ok(result) => Ok(result?),
        Err(e) => Err(ReadError::Malformed(format!(
            "decoding the message failed unexpectedly: {e}"
        ))),
    }
}
