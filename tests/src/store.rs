//! The storage a test's repository lives in, so that one test body runs against the local
//! backend and against a real S3 server (moto's standalone server on 127.0.0.1).
//!
//! The S3 server: `BACKUPD_TEST_S3_ENDPOINT` when set (CI starts one), else a `moto_server` this
//! process starts on a free port and that stops when this process does. Each [`Store`] gets a
//! bucket of its own. Objects are read, damaged and deleted through a real S3 client, the way an
//! attacker or a failing disk would reach them: never through the daemon.

use crate::TestDaemon;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Which backend a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Local,
    S3,
}

/// The credentials the tests give the daemon (moto accepts any).
pub const S3_CREDENTIALS: &str =
    "[default]\naws_access_key_id = backupd-test\naws_secret_access_key = backupd-test-secret\n";

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    runtime().block_on(f)
}

/// The endpoint of the S3 server the tests use, started on first use if none is given.
pub fn s3_endpoint() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            if let Ok(e) = std::env::var("BACKUPD_TEST_S3_ENDPOINT") {
                return e.trim_end_matches('/').to_owned();
            }
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            // A watchdog shell stops the server once this test process is gone.
            let script = format!(
                "moto_server -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
                 while kill -0 {} 2>/dev/null; do sleep 1; done; kill $m",
                std::process::id()
            );
            let watchdog = std::process::Command::new("sh")
                .args(["-c", &script])
                .stdin(std::process::Stdio::null())
                .spawn()
                .expect("start moto_server (pip install 'moto[server]')");
            // Kept (never waited for): it ends on its own after this process.
            static WATCHDOG: OnceLock<std::sync::Mutex<std::process::Child>> = OnceLock::new();
            let _ = WATCHDOG.set(std::sync::Mutex::new(watchdog));
            let endpoint = format!("http://127.0.0.1:{port}");
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "moto_server did not start on port {port}: install it with \
                     `pip install 'moto[server]'` or set BACKUPD_TEST_S3_ENDPOINT"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            endpoint
        })
        .clone()
}

/// Creates a bucket on the test server (moto's server takes an unsigned PUT).
pub fn create_bucket(endpoint: &str, bucket: &str) {
    let url = format!("{endpoint}/{bucket}");
    let out = std::process::Command::new("curl")
        .args(["-sf", "-X", "PUT", &url, "-o", "/dev/null"])
        .status()
        .expect("curl");
    assert!(out.success(), "cannot create bucket {url}");
}

/// A fresh bucket name (3-63 lowercase characters).
pub fn fresh_bucket() -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "t{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    )
}

/// A client for a bucket of the test server.
pub fn s3_client(endpoint: &str, bucket: &str) -> Arc<AmazonS3> {
    Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("backupd-test")
            .with_secret_access_key("backupd-test-secret")
            .with_allow_http(true)
            .build()
            .expect("s3 client"),
    )
}

/// A test repository's storage.
pub struct Store {
    pub backend: Backend,
    /// Local: the repository directory. S3: unused.
    pub root: PathBuf,
    s3: Option<(Arc<AmazonS3>, String)>,
    /// The location as `repo init` takes it.
    pub location: String,
    /// The S3 repository's passphrase (for other daemons to add it).
    password: String,
}

/// Unregisters a daemon's local default repository and deletes it: a restarted daemon would
/// register it again (lost-state recovery, or as missing while its key file is there).
fn drop_local_default(d: &TestDaemon) {
    let out = d.ctl(&["repo", "remove", "default"]);
    assert!(
        out.status.success(),
        "repo remove default: {}",
        crate::text(&out)
    );
    std::fs::remove_dir_all(d.state_dir.join("repository")).expect("rm default repo");
    std::fs::remove_file(d.state_dir.join("keys/default.key")).expect("rm default key");
}

impl Store {
    /// Makes the daemon's default repository live on `backend`: the local one is the daemon's
    /// own default; for S3 a repository is created in a fresh bucket and the local default
    /// removed (registration and directory), so that every command without `--repo` uses the
    /// S3 one, also after a restart.
    pub fn attach(d: &TestDaemon, backend: Backend) -> Self {
        match backend {
            Backend::Local => {
                let root = d.state_dir.join("repository");
                Self {
                    backend,
                    location: root.display().to_string(),
                    root,
                    s3: None,
                    password: String::new(),
                }
            }
            Backend::S3 => {
                let endpoint = s3_endpoint();
                let bucket = fresh_bucket();
                create_bucket(&endpoint, &bucket);
                let location = format!("s3://{bucket}/repo");
                let creds = d.dir.path().join("s3-credentials");
                std::fs::write(&creds, S3_CREDENTIALS).expect("credentials");
                let out = d.ctl(&[
                    "repo",
                    "init",
                    "--name",
                    "main",
                    "--location",
                    &location,
                    "--endpoint",
                    &endpoint,
                    "--credentials-file",
                    creds.to_str().expect("utf8"),
                ]);
                assert!(
                    out.status.success(),
                    "repo init on S3: {}",
                    crate::text(&out)
                );
                drop_local_default(d);
                let key = crate::json_ok(&d.ctl(&["--json", "repo", "key", "export", "main"]));
                let password = key["password"].as_str().expect("passphrase").to_owned();
                Self {
                    backend,
                    root: PathBuf::new(),
                    s3: Some((s3_client(&endpoint, &bucket), "repo".into())),
                    location,
                    password,
                }
            }
        }
    }

    /// Registers this S3 repository on another daemon (another host), under the same name,
    /// as that daemon's only (so default) repository.
    pub fn join(&self, d: &TestDaemon) {
        let endpoint = s3_endpoint();
        let creds = d.dir.path().join("s3-credentials");
        std::fs::write(&creds, S3_CREDENTIALS).expect("credentials");
        let password = d.dir.path().join("repo-password");
        std::fs::write(&password, &self.password).expect("password");
        let out = d.ctl(&[
            "repo",
            "add",
            "--name",
            "main",
            "--location",
            &self.location,
            "--endpoint",
            &endpoint,
            "--credentials-file",
            creds.to_str().expect("utf8"),
            "--password-file",
            password.to_str().expect("utf8"),
        ]);
        assert!(
            out.status.success(),
            "repo add on S3: {}",
            crate::text(&out)
        );
        drop_local_default(d);
    }

    fn object(&self, name: &str) -> ObjectPath {
        let (_, prefix) = self.s3.as_ref().expect("s3");
        ObjectPath::from(format!("{prefix}/{name}"))
    }

    /// Every object under `dir` (`data`, `index`, ...), as names relative to the repository
    /// root, with their sizes, sorted.
    pub fn list(&self, dir: &str) -> Vec<(String, u64)> {
        match &self.s3 {
            None => {
                let mut out = Vec::new();
                let mut stack = vec![self.root.join(dir)];
                while let Some(p) = stack.pop() {
                    let Ok(entries) = std::fs::read_dir(&p) else {
                        continue;
                    };
                    for e in entries.flatten() {
                        let path = e.path();
                        if path.is_dir() {
                            stack.push(path);
                        } else if !e.file_name().to_string_lossy().starts_with(".tmp-") {
                            let rel = path.strip_prefix(&self.root).expect("inside");
                            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                            out.push((rel.display().to_string(), len));
                        }
                    }
                }
                out.sort();
                out
            }
            Some((client, prefix)) => {
                use futures::TryStreamExt;
                let at = ObjectPath::from(format!("{prefix}/{dir}"));
                let mut out: Vec<(String, u64)> = block(
                    client
                        .list(Some(&at))
                        .map_ok(|m| {
                            let full = m.location.to_string();
                            let rel = full
                                .strip_prefix(&format!("{prefix}/"))
                                .unwrap_or(&full)
                                .to_owned();
                            (rel, m.size)
                        })
                        .try_collect(),
                )
                .expect("list objects");
                out.sort();
                out
            }
        }
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        match &self.s3 {
            None => std::fs::read(self.root.join(name)).expect("read object"),
            Some((client, _)) => block(async {
                client
                    .get(&self.object(name))
                    .await
                    .expect("get object")
                    .bytes()
                    .await
                    .expect("object body")
                    .to_vec()
            }),
        }
    }

    pub fn write(&self, name: &str, data: &[u8]) {
        match &self.s3 {
            None => std::fs::write(self.root.join(name), data).expect("write object"),
            Some((client, _)) => {
                block(client.put(&self.object(name), PutPayload::from(data.to_vec())))
                    .expect("put object");
            }
        }
    }

    pub fn delete(&self, name: &str) {
        match &self.s3 {
            None => std::fs::remove_file(self.root.join(name)).expect("delete object"),
            Some((client, _)) => block(client.delete(&self.object(name))).expect("delete object"),
        }
    }

    /// Total bytes stored.
    pub fn size(&self) -> u64 {
        ["config", "keys", "data", "index", "snapshots"]
            .iter()
            .flat_map(|d| self.list(d))
            .map(|(_, l)| l)
            .sum()
    }
}
