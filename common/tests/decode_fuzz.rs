//! Seeded mutation fuzzing of the frame decoder and of decoding every client message (Hello
//! and each Request variant) from arbitrary bytes: decoding returns a value or an error, never
//! panics, never hangs. Bounded to a few seconds; the seed is printed so a failure replays.

use backupd_common::codec::{decode_payload_with, encode_payload, Claim, MessageCodec};
use backupd_common::protocol::*;
use std::time::{Duration, Instant};
use tokio_util::bytes::BytesMut;
use tokio_util::codec::Decoder;

/// Time spent per fuzz target.
const BUDGET: Duration = Duration::from_secs(3);

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn secret() -> Secret {
    Secret(b"pw".to_vec())
}

/// One valid message of every request kind (and Hello).
fn corpus() -> Vec<ClientMessage> {
    let backup = BackupRequest {
        repo: Some("r".into()),
        paths: vec![b"/home/a".to_vec(), b"/etc".to_vec()],
        excludes: vec!["*.tmp".into()],
        exclude_files: vec![b"/x".to_vec()],
        exclude_caches: true,
        one_file_system: true,
        tags: vec!["t".into()],
        host: Some("h".into()),
        time_ns: Some(-5),
        force: true,
        changes: Some(vec![PathChange {
            path: b"/home/a/f".to_vec(),
            tree: true,
        }]),
        parent: Some("abcd".into()),
        source: Some("s".into()),
        dry_run: true,
    };
    let kinds = vec![
        JobKind::Backup(backup),
        JobKind::Restore(RestoreRequest {
            repo: None,
            snapshot: "latest".into(),
            subpath: Some(b"/a".to_vec()),
            target: Some(b"/tmp/r".to_vec()),
            includes: vec!["a".into()],
            excludes: vec!["b".into()],
            verify: true,
            no_owner: true,
            strip_setid: Some(false),
            overwrite: Overwrite::Never,
            filter: SnapshotFilter {
                host: Some("h".into()),
                tags: vec!["t".into()],
                source: Some("s".into()),
                path: None,
            },
        }),
        JobKind::Check(CheckRequest {
            repo: None,
            read_data_percent: 10,
            read_data_subset: None,
        }),
        JobKind::Forget(ForgetRequest {
            keep_last: 3,
            keep_within: Some(Duration::from_secs(60)),
            prune: true,
            ..ForgetRequest::default()
        }),
        JobKind::RebuildIndex(RebuildIndexRequest { repo: None }),
        JobKind::Noop(NoopRequest {
            duration: Duration::from_millis(1),
            fail_attempts: 1,
            permanent: true,
        }),
    ];
    let mut requests: Vec<Request> = kinds
        .into_iter()
        .map(|kind| {
            Request::Queue(QueueRequest::Submit(Box::new(JobSpec {
                kind,
                options: JobOptions {
                    priority: Priority::High,
                    timeout: Some(Duration::from_secs(1)),
                    retries: Some(2),
                    backoff: Some(Duration::from_millis(5)),
                },
            })))
        })
        .collect();
    requests.extend([
        Request::System(SystemRequest::Health),
        Request::System(SystemRequest::WatchHealth {
            interval: Duration::from_millis(250),
            count: 3,
        }),
        Request::System(SystemRequest::Whoami),
        Request::System(SystemRequest::Reload),
        Request::System(SystemRequest::Shutdown),
        Request::Repo(RepoRequest::Init {
            name: "n".into(),
            path: b"/r".to_vec(),
            password: Some(secret()),
            credentials: Some(secret()),
        }),
        Request::Repo(RepoRequest::Add {
            name: "n".into(),
            path: b"s3://bucket/p?endpoint=http://127.0.0.1:9000".to_vec(),
            password: secret(),
            credentials: None,
        }),
        Request::Repo(RepoRequest::List),
        Request::Repo(RepoRequest::KeyExport { name: "n".into() }),
        Request::Snapshots(SnapshotsRequest {
            repo: Some("r".into()),
            filter: SnapshotFilter {
                path: Some(b"/a".to_vec()),
                tags: vec!["t".into()],
                ..SnapshotFilter::default()
            },
        }),
        Request::Repo(RepoRequest::Remove { name: "n".into() }),
        Request::Repo(RepoRequest::Info { name: None }),
        Request::Repo(RepoRequest::KeyAdd {
            name: Some("n".into()),
            password: secret(),
        }),
        Request::Repo(RepoRequest::KeyPasswd {
            name: None,
            password: secret(),
        }),
        Request::Repo(RepoRequest::Stats(StatsRequest {
            repo: None,
            snapshots: vec!["latest".into()],
            filter: SnapshotFilter::default(),
            mode: StatsMode::Raw,
        })),
        Request::Queue(QueueRequest::Status),
        Request::Queue(QueueRequest::Job { id: 300 }),
        Request::Queue(QueueRequest::Wait { id: 1 }),
        Request::Queue(QueueRequest::Cancel { id: 1 }),
        Request::Queue(QueueRequest::DeadLetters),
        Request::Queue(QueueRequest::RetryDeadLetter { id: 1 }),
        Request::Queue(QueueRequest::PurgeDeadLetters),
        Request::Queue(QueueRequest::History(HistoryQuery {
            limit: 20,
            since: Some(std::time::Duration::from_secs(7 * 86_400)),
            source: Some("docs".into()),
            ..Default::default()
        })),
        Request::Queue(QueueRequest::Workers { count: Some(2) }),
        Request::Queue(QueueRequest::Events {
            follow: true,
            backlog: 20,
        }),
        Request::Source(SourceRequest::Add(Box::new(SourceSpec {
            name: "s".into(),
            path: b"/home".to_vec(),
            repo: None,
            excludes: vec!["x".into()],
            watch: true,
            debounce: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
            rescan_every: Duration::from_secs(3600),
            policy: backupd_common::protocol::SourcePolicy {
                schedule: Some("daily 02:00".into()),
                every: Some(Duration::from_secs(600)),
                jitter: Duration::from_secs(60),
                retention: backupd_common::protocol::Retention::Keep(
                    backupd_common::protocol::KeepRules {
                        last: 3,
                        within: Some(Duration::from_secs(3600)),
                        ..Default::default()
                    },
                ),
                retention_every: Some(Duration::from_secs(60)),
                rpo: None,
                rto: None,
            },
        }))),
        Request::Source(SourceRequest::Show { name: "s".into() }),
        Request::Source(SourceRequest::List),
        Request::Source(SourceRequest::Remove { name: "s".into() }),
    ]);
    let mut messages: Vec<ClientMessage> = requests
        .into_iter()
        .enumerate()
        .map(|(i, request)| ClientMessage::Request {
            id: (i as u64 * 977).into(),
            request,
        })
        .collect();
    messages.push(ClientMessage::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        client: "backupctl 0.1.0".into(),
    }));
    messages
}

/// One random edit: flip, set, insert, delete, truncate, splice a large varint, or append.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    let at = rng.below(bytes.len() + 1);
    let last = bytes.len().saturating_sub(1);
    match rng.below(7) {
        0 if !bytes.is_empty() => bytes[at.min(last)] ^= 1 << rng.below(8),
        1 if !bytes.is_empty() => bytes[at.min(last)] = rng.next() as u8,
        2 => bytes.insert(at, rng.next() as u8),
        3 if !bytes.is_empty() => {
            bytes.remove(at.min(last));
        }
        4 => bytes.truncate(at),
        // bincode varint markers: 251 (u16), 252 (u32), 253 (u64), 254 (u128).
        5 => {
            let marker = [251u8, 252, 253, 254][rng.below(4)];
            let tail: Vec<u8> = (0..rng.below(17)).map(|_| rng.next() as u8).collect();
            bytes.splice(at..at, std::iter::once(marker).chain(tail));
        }
        _ => {
            let len = rng.below(64);
            bytes.extend((0..len).map(|_| rng.next() as u8));
        }
    }
}

fn seed() -> u64 {
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_0000_0000_0001u64);
    eprintln!("fuzz seed {seed} (set FUZZ_SEED to replay)");
    seed
}

fn encoded_corpus() -> Vec<Vec<u8>> {
    corpus()
        .iter()
        .map(|m| encode_payload(m).expect("encode"))
        .collect()
}

#[test]
fn every_valid_message_round_trips() {
    for message in corpus() {
        let payload = encode_payload(&message).expect("encode");
        for claim in [Claim::Strict, Claim::Lenient] {
            let back: ClientMessage = decode_payload_with(&payload, claim).expect("decode");
            assert_eq!(back, message);
        }
    }
}

#[test]
fn mutated_payloads_decode_or_fail_without_panicking() {
    let mut rng = Rng(seed());
    let corpus = encoded_corpus();
    let start = Instant::now();
    let (mut runs, mut decoded) = (0u64, 0u64);
    while start.elapsed() < BUDGET {
        let mut bytes = corpus[rng.below(corpus.len())].clone();
        for _ in 0..1 + rng.below(4) {
            mutate(&mut rng, &mut bytes);
        }
        for claim in [Claim::Strict, Claim::Lenient] {
            if let Ok(message) = decode_payload_with::<ClientMessage>(&bytes, claim) {
                decoded += 1;
                // Whatever decodes is a message that encodes and decodes to itself.
                let again = encode_payload(&message).expect("re-encode");
                let back: ClientMessage = decode_payload_with(&again, Claim::Lenient)
                    .expect("a re-encoded message decodes");
                assert_eq!(back, message);
            }
        }
        runs += 1;
    }
    eprintln!("{runs} mutated payloads, {decoded} decodes succeeded");
    assert!(runs > 1000, "the fuzz loop ran only {runs} times");
}

#[test]
fn mutated_frames_through_the_codec_in_random_chunks_never_panic() {
    let mut rng = Rng(seed() ^ 0xC0DE);
    let corpus = encoded_corpus();
    let start = Instant::now();
    let mut runs = 0u64;
    while start.elapsed() < BUDGET {
        // A stream of a few frames, with mutated payloads and sometimes a wrong length prefix.
        let mut wire = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let mut payload = corpus[rng.below(corpus.len())].clone();
            if rng.below(2) == 0 {
                mutate(&mut rng, &mut payload);
            }
            let mut len = payload.len() as u32;
            if rng.below(8) == 0 {
                len = rng.next() as u32;
            }
            wire.extend_from_slice(&len.to_be_bytes());
            wire.extend_from_slice(&payload);
        }
        let mut codec: MessageCodec<ClientMessage, ServerMessage> = MessageCodec::new(64 * 1024);
        let mut buf = BytesMut::new();
        let mut rest = &wire[..];
        'feed: while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(300));
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => break 'feed, // the connection would be closed here
                }
            }
        }
        runs += 1;
    }
    eprintln!("{runs} mutated frame streams");
    assert!(runs > 1000, "the fuzz loop ran only {runs} times");
}
