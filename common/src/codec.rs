//! Frame codec: a 4-byte big-endian length prefix (tokio-util `LengthDelimitedCodec`) around a
//! bincode payload. A length prefix above the maximum is rejected before anything is allocated.
//!
//! Bincode decoding is limited by the frame: every value it decodes "claims" its in-memory size
//! (a `u64` claims 8 bytes, a string its length, a list's length prefix 8 bytes), and decoding
//! stops with an error once the claims exceed a budget derived from the frame's length. A hostile
//! length inside the payload is therefore refused before anything is allocated for it, and what a
//! whole frame decodes into is a small multiple of its size.

use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io;
use std::marker::PhantomData;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec, LengthDelimitedCodecError};

/// Default and ceiling of the frame size.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;
/// Largest frame the daemon accepts before `Hello` and from non-admin uids: their requests are
/// small, and a stranger should not make the daemon buffer megabytes.
pub const RESTRICTED_MAX_FRAME: usize = 64 * 1024;
/// Frames up to this size are read into the connection's own buffer; larger ones need a share of
/// the daemon's frame budget (`server.frame_budget_bytes`) first.
pub const UNBUDGETED_FRAME: usize = 4 * 1024;
/// What every decode may claim beyond its frame-proportional share (fixed-size headers).
const CLAIM_SLACK: usize = 64 * 1024;

/// How much a decode may claim, relative to the frame's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// 8 × the frame (+ 64 KiB): no value claims more than 8 times its encoding (a `u64` below
    /// 251 is one byte on the wire, eight in memory), so no well-formed message is refused. For
    /// messages from a peer we trust not to attack us: the client reading the daemon.
    Lenient,
    /// 2 × the frame (+ 64 KiB): what the daemon allows for client messages. Requests are mostly
    /// byte strings, which claim about what they encode; only a list dominated by elements of a
    /// few bytes (a million `/` paths) is refused. Since each element's allocation is at most 3×
    /// its claim (a 24-byte `Vec` header for an 8-byte length), doubled by a growing list's
    /// spare capacity, a frame decodes into at most about 12× its length (+ slack), and a
    /// 64 KiB frame into about 2 MiB at worst.
    Strict,
}

impl Claim {
    fn max_for(self, frame_len: usize) -> usize {
        let factor = match self {
            Self::Lenient => 8,
            Self::Strict => 2,
        };
        frame_len.saturating_mul(factor).saturating_add(CLAIM_SLACK)
    }
}

type DecodeResult<T> = Result<(T, usize), bincode::error::DecodeError>;

/// Decodes with the smallest power-of-two claim limit at or above `max_claim` (bincode takes the
/// limit as a const generic, hence the ladder).
fn decode_claiming<T: DeserializeOwned>(payload: &[u8], max_claim: usize) -> DecodeResult<T> {
    macro_rules! ladder {
        ($($shift:literal)*) => {
            $(
                if max_claim <= 1usize << $shift {
                    let config = bincode::config::standard().with_limit::<{ 1usize << $shift }>();
                    return bincode::serde::decode_from_slice(payload, config);
                }
            )*
        };
    }
    ladder!(16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31);
    let config = bincode::config::standard().with_limit::<{ usize::MAX >> 1 }>();
    bincode::serde::decode_from_slice(payload, config)
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes announced, the maximum is {max} bytes")]
    TooLarge { len: u64, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("could not encode a message: {0}")]
    Encode(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Encodes `Out` and decodes `In`, each in its own frame.
pub struct MessageCodec<In, Out> {
    frames: LengthDelimitedCodec,
    max: usize,
    /// The inner codec has consumed a frame's length prefix and waits for its body; the bytes at
    /// the front of the buffer are payload, not a prefix.
    mid_frame: bool,
    _types: PhantomData<fn(Out) -> In>,
}

impl<In, Out> std::fmt::Debug for MessageCodec<In, Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageCodec")
            .field("max", &self.max)
            .finish()
    }
}

impl<In, Out> MessageCodec<In, Out> {
    pub fn new(max_frame: usize) -> Self {
        let frames = LengthDelimitedCodec::builder()
            .length_field_length(4)
            .big_endian()
            .max_frame_length(max_frame)
            .new_codec();
        Self {
            frames,
            max: max_frame,
            mid_frame: false,
            _types: PhantomData,
        }
    }
}

/// Decodes one message from a complete frame payload, leniently (see [`Claim::Lenient`]);
/// trailing bytes are an error.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    decode_payload_with(payload, Claim::Lenient)
}

/// Decodes one message from a complete frame payload with the given claim limit; trailing bytes
/// are an error.
pub fn decode_payload_with<T: DeserializeOwned>(
    payload: &[u8],
    claim: Claim,
) -> Result<T, FrameError> {
    let max_claim = claim.max_for(payload.len());
    let (value, used) = decode_claiming(payload, max_claim).map_err(|e| match e {
        bincode::error::DecodeError::LimitExceeded => FrameError::Malformed(format!(
            "the {}-byte message describes more than {max_claim} bytes of data; lists of tiny \
             elements or hostile lengths are refused",
            payload.len()
        )),
        other => FrameError::Malformed(other.to_string()),
    })?;
    if used != payload.len() {
        return Err(FrameError::Malformed(format!(
            "{} trailing bytes after the message",
            payload.len() - used
        )));
    }
    Ok(value)
}

/// Encodes one message into a frame payload (without the length prefix).
pub fn encode_payload<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    bincode::serde::encode_to_vec(value, bincode_config())
        .map_err(|e| FrameError::Encode(e.to_string()))
}

impl<In: DeserializeOwned, Out> Decoder for MessageCodec<In, Out> {
    type Item = In;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, FrameError> {
        // Peek the prefix ourselves so the error can say how large the frame claimed to be.
        let at_prefix = !self.mid_frame && src.len() >= 4;
        if at_prefix {
            let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as u64;
            if len > self.max as u64 {
                return Err(FrameError::TooLarge { len, max: self.max });
            }
        }
        match self.frames.decode(src) {
            Ok(Some(frame)) => {
                self.mid_frame = false;
                decode_payload(&frame).map(Some)
            }
            Ok(None) => {
                // With a whole prefix available the inner codec consumed it.
                self.mid_frame |= at_prefix;
                Ok(None)
            }
            Err(e) => Err(map_length_error(e, self.max)),
        }
    }
}

fn map_length_error(e: io::Error, max: usize) -> FrameError {
    let too_large = e
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<LengthDelimitedCodecError>().is_some());
    if too_large {
        FrameError::TooLarge {
            len: max as u64 + 1,
            max,
        }
    } else {
        FrameError::Io(e)
    }
}

impl<In, Out: Serialize> Encoder<Out> for MessageCodec<In, Out> {
    type Error = FrameError;

    fn encode(&mut self, item: Out, dst: &mut BytesMut) -> Result<(), FrameError> {
        let payload = encode_payload(&item)?;
        if payload.len() > self.max {
            return Err(FrameError::Encode(format!(
                "message of {} bytes exceeds the {} byte frame limit",
                payload.len(),
                self.max
            )));
        }
        self.frames
            .encode(Bytes::from(payload), dst)
            .map_err(|e| map_length_error(e, self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ClientMessage, Hello, Request, SystemRequest};

    fn codec() -> MessageCodec<ClientMessage, ClientMessage> {
        MessageCodec::new(1024)
    }

    #[test]
    fn round_trips_a_message() {
        let msg = ClientMessage::Request {
            id: 7.into(),
            request: Request::System(SystemRequest::Health),
        };
        let mut buf = BytesMut::new();
        codec().encode(msg.clone(), &mut buf).expect("encode");
        assert_eq!(&buf[..4], &((buf.len() - 4) as u32).to_be_bytes());
        let decoded = codec().decode(&mut buf).expect("decode");
        assert_eq!(decoded, Some(msg));
        assert!(buf.is_empty());
    }

    #[test]
    fn frames_arriving_byte_by_byte_decode_in_order() {
        // Regression: the prefix peek must not read payload bytes as a length mid-frame.
        let messages: Vec<ClientMessage> = (0..3)
            .map(|i| {
                ClientMessage::Hello(Hello {
                    protocol_version: i,
                    client: "x".repeat(300 + i as usize),
                })
            })
            .collect();
        let mut wire = BytesMut::new();
        for m in &messages {
            codec().encode(m.clone(), &mut wire).expect("encode");
        }
        let mut codec = codec();
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        for byte in wire.iter() {
            buf.extend_from_slice(&[*byte]);
            while let Some(m) = codec.decode(&mut buf).expect("decode") {
                decoded.push(m);
            }
        }
        assert_eq!(decoded, messages);
    }

    #[test]
    fn oversized_length_prefix_is_rejected_without_waiting_for_the_body() {
        let mut buf = BytesMut::from(&[0xFF, 0xFF, 0xFF, 0xFF][..]);
        match codec().decode(&mut buf) {
            Err(FrameError::TooLarge { len, max }) => {
                assert_eq!(len, 0xFFFF_FFFF);
                assert_eq!(max, 1024);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn truncated_frame_waits_for_more_bytes() {
        let mut buf = BytesMut::new();
        let hello = ClientMessage::Hello(Hello {
            protocol_version: 1,
            client: "t".into(),
        });
        codec().encode(hello, &mut buf).expect("encode");
        buf.truncate(buf.len() - 1);
        assert!(codec().decode(&mut buf).expect("no error yet").is_none());
    }

    #[test]
    fn random_payload_is_malformed_not_a_panic() {
        // A deterministic pseudo-random sweep of payloads.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut malformed = 0;
        for len in 0..300usize {
            let mut payload = Vec::with_capacity(len);
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                payload.push(state as u8);
            }
            let mut buf = BytesMut::new();
            buf.extend_from_slice(&(len as u32).to_be_bytes());
            buf.extend_from_slice(&payload);
            // Returns (never panics); random bytes nearly always fail to decode.
            match codec().decode(&mut buf) {
                Err(_) => malformed += 1,
                Ok(Some(_)) => {}
                Ok(None) => panic!("a whole frame of {len} bytes was not taken"),
            }
        }
        assert!(
            malformed >= 280,
            "only {malformed} of 300 random payloads malformed"
        );
    }

    #[test]
    fn hostile_inner_length_does_not_allocate_past_the_limit() {
        // Variant 1 (Request), id 0, variant 0 (System), then a claimed huge string/vec length.
        let payload = [
            1u8, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        assert!(matches!(
            decode_payload::<ClientMessage>(&payload),
            Err(FrameError::Malformed(_))
        ));
    }

    fn submission(paths: Vec<Vec<u8>>) -> Vec<u8> {
        use crate::protocol::{BackupRequest, JobKind, JobOptions, JobSpec, QueueRequest};
        encode_payload(&ClientMessage::Request {
            id: 1.into(),
            request: Request::Queue(QueueRequest::Submit(Box::new(JobSpec {
                kind: JobKind::Backup(BackupRequest {
                    paths,
                    ..BackupRequest::default()
                }),
                options: JobOptions::default(),
            }))),
        })
        .expect("encode")
    }

    #[test]
    fn strict_claims_refuse_lists_of_empty_paths_but_not_real_ones() {
        // 64 KiB of one-byte empty paths would decode into 1.5 MB of list headers.
        let hostile = submission(vec![Vec::new(); 64 * 1024 - 64]);
        assert!(matches!(
            decode_payload_with::<ClientMessage>(&hostile, Claim::Strict),
            Err(FrameError::Malformed(m)) if m.contains("more than")
        ));
        // 20,000 realistic paths (about 1 MB) decode under the strict limit.
        let paths: Vec<Vec<u8>> = (0..20_000)
            .map(|i| format!("/home/user/projects/file-{i}.txt").into_bytes())
            .collect();
        let real = submission(paths);
        assert!(decode_payload_with::<ClientMessage>(&real, Claim::Strict).is_ok());
        // Short paths are fine while the message is small (the fixed slack).
        let short = submission(vec![b"/".to_vec(); 1000]);
        assert!(decode_payload_with::<ClientMessage>(&short, Claim::Strict).is_ok());
    }

    #[test]
    fn trailing_bytes_are_malformed() {
        let mut payload = encode_payload(&ClientMessage::Hello(Hello {
            protocol_version: 1,
            client: "x".into(),
        }))
        .expect("encode");
        payload.push(0);
        assert!(matches!(
            decode_payload::<ClientMessage>(&payload),
            Err(FrameError::Malformed(_))
        ));
    }
}
