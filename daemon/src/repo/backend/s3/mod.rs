//! The S3 backend: repository objects in an S3 or S3-compatible bucket (AWS, MinIO, Ceph RGW,
//! Garage, Wasabi, Backblaze B2), under an optional prefix, through the Arrow project's
//! `object_store` client (SigV4, retries with back-off on throttling and 5xx, multipart
//! uploads, conditional puts).
//!
//! How the trait's contract holds on a store without rename or directories (docs/FORMAT.md,
//! "Object stores"):
//! * `put` is one PUT (or one multipart upload for packs above [`MULTIPART_ABOVE`]): S3 makes
//!   an object visible whole or not at all, and durable when it answers.
//! * `put_new` is a conditional PUT (`If-None-Match: *`): the store refuses it (412) when the
//!   object exists, so two writers cannot both create one key. A store that ignores the
//!   header is named in docs/FORMAT.md.
//! * A missing bucket is never created: `create` checks the bucket is there and empty.
//! * Interrupted multipart uploads are not objects; they are never listed. The client offers
//!   no listing of them, so `list_incomplete` is empty and a bucket lifecycle rule
//!   (AbortIncompleteMultipartUpload) removes them (docs/OPERATIONS.md).
//!
//! The backend blocks like every other: each call runs on a small tokio runtime of its own
//! and the calling (blocking) thread waits for the answer, so it works from any thread,
//! inside the daemon's runtime or not.

pub mod credentials;
pub mod spec;

use super::{Backend, BackendError, Cause, ErrorKind, FileKind, Key, ObjectInfo, Presence, Result};
use crate::repo::location::Location;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig, WriteMultipart,
};
pub use spec::S3Spec;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Objects larger than this are uploaded in parts of this size, concurrently.
pub const MULTIPART_ABOVE: usize = 8 * 1024 * 1024;
/// A request that has not finished after this long fails (and is retried).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries of one request: 0.1 + 0.2 + ... + 3.2 s of back-off (about 6 s) before a failure
/// reaches the engine, whose jobs retry again on their own schedule.
const MAX_RETRIES: usize = 6;

/// The runtime every S3 request runs on: two threads are plenty for I/O that mostly waits.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3-io")
            .enable_all()
            .build()
            .expect("cannot start the S3 client's runtime threads")
    })
}

/// Runs `fut` on the S3 runtime and waits for it on this thread.
fn block<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .expect("the S3 runtime dropped a request (it only stops with the process)")
}

/// An S3 bucket (and prefix) holding a repository.
#[derive(Clone, Debug)]
pub struct S3Backend {
    location: Location,
    spec: S3Spec,
    /// The client, or why none could be built (bad credentials file): every call then fails
    /// with that reason, as a local backend fails on an unreadable directory.
    store: std::result::Result<Arc<AmazonS3>, (ErrorKind, String)>,
}

impl S3Backend {
    pub fn new(spec: S3Spec) -> Self {
        let store = credentials::resolve(spec.credentials.as_deref())
            .map_err(|e| (ErrorKind::Denied, e.to_string()))
            .and_then(|creds| build(&spec, creds));
        Self::with_store(spec, store)
    }

    /// With the given credentials instead of the daemon's (tests).
    pub fn with_credentials(spec: S3Spec, creds: credentials::Credentials) -> Self {
        let store = build(&spec, Some(creds));
        Self::with_store(spec, store)
    }

    fn with_store(
        spec: S3Spec,
        store: std::result::Result<Arc<AmazonS3>, (ErrorKind, String)>,
    ) -> Self {
        Self {
            location: Location::S3(Box::new(spec.clone())),
            spec,
            store,
        }
    }

    fn path(&self, key: Key<'_>) -> ObjectPath {
        ObjectPath::from(self.spec.object(&key.object_name()))
    }

    fn kind_prefix(&self, kind: FileKind) -> ObjectPath {
        ObjectPath::from(self.spec.object(kind.dir()))
    }

    fn store(&self, action: &'static str, target: &str) -> Result<Arc<AmazonS3>> {
        crate::perf::counters::add_store_request();
        self.store.clone().map_err(|(kind, why)| {
            BackendError::new(kind, action, target.to_owned(), Cause::Remote(why))
        })
    }

    fn error(&self, action: &'static str, target: String, e: object_store::Error) -> BackendError {
        let (kind, why) = classify(&e, &self.spec);
        BackendError::new(kind, action, target, Cause::Remote(why))
    }

    fn url(&self, name: &str) -> String {
        let mut s = format!("s3://{}/{}", self.spec.bucket, self.spec.object(name));
        if let Some(e) = &self.spec.endpoint {
            s.push_str(&format!(" (at {e})"));
        }
        s
    }
}

/// Builds the client for `spec` with `creds` (`None`: the client's own providers).
fn build(
    spec: &S3Spec,
    creds: Option<credentials::Credentials>,
) -> std::result::Result<Arc<AmazonS3>, (ErrorKind, String)> {
    // The environment first (AWS_ENDPOINT_URL, AWS_REGION, ...), then what the location says.
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(&spec.bucket)
        .with_allow_http(spec.http_allowed())
        .with_virtual_hosted_style_request(spec.virtual_hosted)
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: MAX_RETRIES,
            retry_timeout: Duration::from_secs(180),
        })
        .with_client_options(
            ClientOptions::new()
                .with_timeout(REQUEST_TIMEOUT)
                .with_connect_timeout(CONNECT_TIMEOUT)
                .with_allow_http(spec.http_allowed()),
        );
    let env_region = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .ok();
    b = b.with_region(
        spec.region
            .clone()
            .or(env_region)
            .unwrap_or_else(|| "us-east-1".into()),
    );
    if let Some(e) = &spec.endpoint {
        b = b.with_endpoint(e);
    }
    if let Some(c) = creds {
        b = b
            .with_access_key_id(c.access_key_id)
            .with_secret_access_key(c.secret_access_key);
        if let Some(t) = c.session_token {
            b = b.with_token(t);
        }
    }
    b.build().map(Arc::new).map_err(|e| {
        (
            ErrorKind::Permanent,
            format!("cannot set up the S3 client: {e}"),
        )
    })
}

/// The HTTP status an error carries in its message, if any.
fn status_of(message: &str) -> Option<u16> {
    let at = message.find("status code: ")? + "status code: ".len();
    message.get(at..at + 3)?.parse().ok()
}

/// An error with its causes, as one text: the store's answer (its XML error code) sits in a
/// cause, not in the top-level message.
fn full_text(e: &object_store::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// What kind of failure an S3 error is, with a message that says which and what to do.
fn classify(e: &object_store::Error, spec: &S3Spec) -> (ErrorKind, String) {
    use object_store::Error as E;
    let text = full_text(e);
    let store = spec.to_string();
    if text.contains("NoSuchBucket") {
        return (
            ErrorKind::Permanent,
            format!(
                "the bucket {} does not exist on {store}: create it (e.g. `aws s3 mb s3://{}`) or \
                 correct the repository's location",
                spec.bucket, spec.bucket
            ),
        );
    }
    match e {
        E::NotFound { .. } => (ErrorKind::NotFound, "no such object".into()),
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            let code = [
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "AccessDenied",
                "ExpiredToken",
            ]
            .into_iter()
            .find(|c| text.contains(c))
            .unwrap_or("access refused");
            (
                ErrorKind::Denied,
                format!(
                    "{store} refused the request ({code}): check the repository's credentials \
                     (--credentials-file, or the daemon's AWS_ACCESS_KEY_ID / \
                     AWS_SECRET_ACCESS_KEY) and the bucket's policy"
                ),
            )
        }
        // What went over the wire (or failed to): classified by the HTTP status or the
        // transport's failure.
        E::Generic { .. }
        | E::JoinError { .. }
        | E::AlreadyExists { .. }
        | E::Precondition { .. }
        | E::NotModified { .. } => match status_of(&text) {
            Some(429 | 500..=599) => (ErrorKind::Transient, text),
            Some(408) => (ErrorKind::Transient, text),
            Some(_) => (ErrorKind::Permanent, text),
            None if text.contains("timed out") || text.contains("timeout") => (
                ErrorKind::Transient,
                format!("{text} (the store did not answer in time)"),
            ),
            None if text.contains("connect") || text.contains("dns") => (
                ErrorKind::Unreachable,
                format!("{text}: is the endpoint {store} up and reachable?"),
            ),
            None => (ErrorKind::Transient, text),
        },
        // Everything else is the client's own refusal (an operation the store or client does
        // not offer, an invalid object name, a bad setting): the same call fails again.
        _ => (ErrorKind::Permanent, text),
    }
}

impl Backend for S3Backend {
    fn location(&self) -> &Location {
        &self.location
    }

    fn presence(&self) -> Result<Presence> {
        let target = self.url("");
        let store = self.store("list", &target)?;
        let prefix =
            (!self.spec.prefix.is_empty()).then(|| ObjectPath::from(self.spec.prefix.as_str()));
        let listed = block(async move { store.list_with_delimiter(prefix.as_ref()).await });
        match listed {
            Ok(l) if l.objects.is_empty() && l.common_prefixes.is_empty() => Ok(Presence::Empty),
            Ok(_) => Ok(Presence::Occupied),
            Err(e) if full_text(&e).contains("NoSuchBucket") => Ok(Presence::Absent),
            Err(e) => Err(self.error("list", target, e)),
        }
    }

    fn create(&self) -> Result<()> {
        // Nothing to create on an object store; a missing bucket is the admin's to create.
        match self.presence()? {
            Presence::Absent => Err(BackendError::new(
                ErrorKind::Permanent,
                "create repository at",
                self.url(""),
                Cause::Remote(format!(
                    "the bucket {} does not exist: create it first (e.g. `aws s3 mb s3://{}`); \
                     backupd never creates buckets",
                    self.spec.bucket, self.spec.bucket
                )),
            )),
            _ => Ok(()),
        }
    }

    fn put(&self, key: Key<'_>, data: &[u8]) -> Result<()> {
        let target = self.url(&key.object_name());
        let store = self.store("write", &target)?;
        let path = self.path(key);
        let bytes = Bytes::copy_from_slice(data);
        let len = data.len();
        let done = block(async move {
            if len <= MULTIPART_ABOVE {
                return store.put(&path, PutPayload::from(bytes)).await.map(|_| ());
            }
            let upload = store.put_multipart(&path).await?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_ABOVE);
            writer.put(bytes);
            writer.finish().await.map(|_| ())
        });
        done.map_err(|e| self.error("write", target, e))?;
        crate::perf::counters::add_stored(len as u64);
        Ok(())
    }

    fn put_new(&self, key: Key<'_>, data: &[u8]) -> Result<bool> {
        let target = self.url(&key.object_name());
        let store = self.store("write", &target)?;
        let path = self.path(key);
        let payload = PutPayload::from(Bytes::copy_from_slice(data));
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match block(async move { store.put_opts(&path, payload, opts).await }) {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(e) => Err(self.error("write", target, e)),
        }
    }

    fn get(&self, key: Key<'_>) -> Result<Vec<u8>> {
        let target = self.url(&key.object_name());
        let store = self.store("read", &target)?;
        let path = self.path(key);
        let max = key.kind.max_size();
        let got = block(async move {
            let r = store.get(&path).await?;
            let size = r.meta.size;
            if size > max {
                return Ok(Err(size));
            }
            r.bytes().await.map(Ok)
        });
        match got {
            Ok(Ok(b)) => Ok(b.to_vec()),
            Ok(Err(size)) => Err(BackendError::new(
                ErrorKind::Permanent,
                "read",
                target,
                Cause::TooLarge { size, max },
            )),
            Err(e) => Err(self.error("read", target, e)),
        }
    }

    fn get_range(&self, key: Key<'_>, offset: u64, len: usize) -> Result<Vec<u8>> {
        let target = self.url(&key.object_name());
        let store = self.store("read", &target)?;
        let path = self.path(key);
        let end = offset + len as u64;
        let got = block(async move { store.get_range(&path, offset..end).await });
        match got {
            Ok(b) if b.len() == len => Ok(b.to_vec()),
            Ok(b) => Err(BackendError::new(
                ErrorKind::Permanent,
                "read",
                target,
                Cause::Short {
                    end,
                    size: offset + b.len() as u64,
                },
            )),
            Err(e)
                if {
                    let text = e.to_string();
                    status_of(&text) == Some(416) || text.contains("Range")
                } =>
            {
                Err(BackendError::new(
                    ErrorKind::Permanent,
                    "read",
                    target,
                    Cause::Short { end, size: offset },
                ))
            }
            Err(e) => Err(self.error("read", target, e)),
        }
    }

    fn list(&self, kind: FileKind) -> Result<Vec<String>> {
        if kind == FileKind::Config {
            return Ok(if self.exists(Key::config())? {
                vec!["config".to_owned()]
            } else {
                Vec::new()
            });
        }
        let prefix = self.kind_prefix(kind);
        let target = self.url(kind.dir());
        let store = self.store("list", &target)?;
        let listed = block(async move {
            store
                .list(Some(&prefix))
                .map_ok(|m| m.location.filename().unwrap_or_default().to_owned())
                .try_collect::<Vec<String>>()
                .await
        });
        let mut names = listed.map_err(|e| self.error("list", target, e))?;
        names.retain(|n| !n.is_empty());
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn stat(&self, key: Key<'_>) -> Result<ObjectInfo> {
        let target = self.url(&key.object_name());
        let store = self.store("stat", &target)?;
        let path = self.path(key);
        let meta = block(async move { store.head(&path).await })
            .map_err(|e| self.error("stat", target, e))?;
        Ok(ObjectInfo {
            size: meta.size,
            modified: Some(meta.last_modified.into()),
        })
    }

    fn delete(&self, key: Key<'_>) -> Result<()> {
        let target = self.url(&key.object_name());
        let store = self.store("delete", &target)?;
        let path = self.path(key);
        match block(async move { store.delete(&path).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", target, e)),
        }
    }

    fn list_incomplete(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn delete_incomplete(&self, name: &str) -> Result<()> {
        Err(BackendError::new(
            ErrorKind::Permanent,
            "delete",
            self.url(name),
            Cause::Remote("an object store has no incomplete objects to delete".into()),
        ))
    }

    fn describe(&self, key: Key<'_>) -> String {
        self.url(&key.object_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An HTTP server on loopback answering each request with the next of `replies` (status
    /// line and body; one connection per request), counting the requests it saw.
    fn scripted(replies: Vec<(&'static str, &'static str)>) -> (String, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let (status, body) = replies[n.min(replies.len() - 1)];
                let mut reader = BufReader::new(&stream);
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut sink = vec![0u8; length];
                let _ = reader.read_exact(&mut sink);
                let reply = format!(
                    "HTTP/1.1 {status}\r\nETag: \"e\"\r\nContent-Type: application/xml\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = (&stream).write_all(reply.as_bytes());
            }
        });
        (endpoint, seen)
    }

    fn backend(endpoint: &str) -> S3Backend {
        let spec = S3Spec::parse(&format!("s3://bucket/p?endpoint={endpoint}")).expect("spec");
        S3Backend::with_credentials(
            spec,
            credentials::Credentials {
                access_key_id: "AKIATEST".into(),
                secret_access_key: "test-secret".into(),
                session_token: None,
            },
        )
    }

    #[test]
    fn throttling_and_server_errors_are_retried_then_succeed() {
        let (endpoint, seen) = scripted(vec![
            ("503 Slow Down", "<Error><Code>SlowDown</Code></Error>"),
            ("500 Internal Server Error", ""),
            ("200 OK", ""),
        ]);
        backend(&endpoint)
            .put(Key::index(&"ab".repeat(32)), b"sealed")
            .expect("the third attempt succeeds");
        assert_eq!(seen.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn refused_credentials_and_a_missing_bucket_are_permanent_and_say_which() {
        let (endpoint, seen) = scripted(vec![(
            "403 Forbidden",
            "<Error><Code>InvalidAccessKeyId</Code><Message>no such key</Message></Error>",
        )]);
        let e = backend(&endpoint).get(Key::config()).expect_err("refused");
        assert_eq!(e.kind, ErrorKind::Denied, "{e}");
        assert!(e.to_string().contains("InvalidAccessKeyId"), "{e}");
        assert!(e.to_string().contains("credentials"), "{e}");
        assert!(!e.to_string().contains("test-secret"), "{e}");
        assert_eq!(seen.load(Ordering::SeqCst), 1, "not retried");

        let (endpoint, _) = scripted(vec![(
            "404 Not Found",
            "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>",
        )]);
        let e = backend(&endpoint)
            .get(Key::config())
            .expect_err("no bucket");
        assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
        assert!(
            e.to_string().contains("bucket bucket does not exist"),
            "{e}"
        );
    }

    #[test]
    fn http_statuses_are_read_from_messages() {
        assert_eq!(
            status_of("Server returned non-2xx status code: 503 Service Unavailable: "),
            Some(503)
        );
        assert_eq!(status_of("error sending request"), None);
    }
}
