//! A blocking connection that speaks frames by hand, for tests that misbehave on purpose.

use backupd_common::codec::{decode_payload, encode_payload};
use backupd_common::protocol::{ClientMessage, Hello, ServerMessage, PROTOCOL_VERSION};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A blocking connection that speaks frames by hand, for tests that misbehave on purpose.
pub struct RawConn {
    pub stream: UnixStream,
}

impl RawConn {
    pub fn connect(path: &Path) -> io::Result<Self> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(Duration::from_secs(15)))?;
        Ok(Self { stream })
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn send(&mut self, message: &ClientMessage) -> io::Result<()> {
        let payload = encode_payload(message).map_err(io::Error::other)?;
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&payload);
        self.send_raw(&frame)
    }

    /// The next message, or `None` when the daemon closed the connection.
    pub fn recv(&mut self) -> io::Result<Option<ServerMessage>> {
        let mut len = [0u8; 4];
        match self.stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut payload)?;
        decode_payload(&payload).map(Some).map_err(io::Error::other)
    }

    /// Sends Hello and reads the reply. A refused connection may be closed by the daemon before
    /// Hello is written; its `Fatal` is still waiting to be read, so a broken pipe is not the
    /// answer (backupctl reads it the same way).
    pub fn hello(&mut self, protocol_version: u32) -> io::Result<Option<ServerMessage>> {
        let sent = self.send(&ClientMessage::Hello(Hello {
            protocol_version,
            client: "backupd-tests".into(),
        }));
        match sent {
            Ok(()) => self.recv(),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) =>
            {
                match self.recv() {
                    Ok(Some(reply)) => Ok(Some(reply)),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    pub fn handshake(&mut self) -> io::Result<()> {
        match self.hello(PROTOCOL_VERSION)? {
            Some(ServerMessage::Welcome(_)) => Ok(()),
            other => Err(io::Error::other(format!("no Welcome: {other:?}"))),
        }
    }

    /// A connection past its handshake. A slot freed by a client that just left is released by
    /// the daemon a moment later, so a `Busy` refusal is retried until `deadline`.
    pub fn admitted(path: &Path, deadline: Duration) -> io::Result<Self> {
        let start = std::time::Instant::now();
        loop {
            let mut conn = Self::connect(path)?;
            match conn.hello(PROTOCOL_VERSION)? {
                Some(ServerMessage::Welcome(_)) => return Ok(conn),
                Some(ServerMessage::Fatal(e))
                    if e.code == backupd_common::error::ErrorCode::Busy
                        && start.elapsed() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return Err(io::Error::other(format!("no Welcome: {other:?}"))),
            }
        }
    }

    /// True once the daemon has closed the connection (reads EOF).
    pub fn closed_by_peer(&mut self) -> bool {
        let mut buf = [0u8; 64];
        matches!(self.stream.read(&mut buf), Ok(0))
            || matches!(self.stream.read(&mut buf), Err(e) if e.kind() == io::ErrorKind::ConnectionReset)
    }
}
