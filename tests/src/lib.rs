//! Support for the end-to-end tests: locate the built binaries, run a real `backupd` on a temp
//! socket ([`TestDaemon`], killed on drop), drive it with `backupctl`, and speak raw frames
//! ([`RawConn`]) for hostile-input tests, and scrape its Prometheus endpoint ([`scrape`]).
//! Waiting (`wait`), checking and restoring (`verify`) are shared here so that no test file
//! writes its own; [`Tmux`] is a real terminal for full-screen commands.

mod attacker;
mod raw;
pub mod scrape;
mod smallfs;
pub mod store;
mod tmux;
pub mod treecmp;
mod verify;
mod wait;

pub use attacker::Attacker;
pub use raw::RawConn;
pub use smallfs::SmallFs;
pub use tmux::{shell_quote, Tmux};
pub use wait::{poll_until, wait_until, wait_until_else};

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

/// Directory holding `backupd` and `backupctl`: `$BACKUPD_BIN_DIR`, else the cargo profile
/// directory this test binary was built into (`target/<profile>/deps/..`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BACKUPD_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps dir");
    let profile = if deps.ends_with("deps") {
        deps.parent().expect("profile dir")
    } else {
        deps
    };
    profile.to_owned()
}

/// Path of a workspace binary; panics with the fix when it has not been built.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} not found; run the whole suite with `cargo test --workspace` (it builds the binaries) \
         or set BACKUPD_BIN_DIR",
        path.display()
    );
    path
}

/// Deterministic incompressible bytes (xorshift64): test data that dedups only with itself.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    // A bijection of the seed (distinct seeds, distinct data) that avoids xorshift's fixed
    // point at 0.
    let mut state = match seed ^ 0x9E37_79B9_7F4A_7C15 {
        0 => 1,
        s => s,
    };
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A backupd process on a private socket and state dir, killed when dropped.
pub struct TestDaemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

#[derive(Default)]
pub struct DaemonOptions {
    /// Contents of a config file passed with `--config`.
    pub config: Option<String>,
    pub extra_args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// State directory to use instead of a fresh one in the temp dir.
    pub state_dir: Option<PathBuf>,
}

impl TestDaemon {
    pub fn start() -> Self {
        Self::start_with(DaemonOptions::default())
    }

    pub fn start_with(options: DaemonOptions) -> Self {
        let daemon = Self::spawn(options);
        daemon.wait_ready(Duration::from_secs(10));
        daemon
    }

    /// Spawns without waiting for readiness.
    pub fn spawn(options: DaemonOptions) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("backupd.sock");
        let state_dir = options
            .state_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("state"));
        let log = dir.path().join("backupd.log");
        let mut cmd = Command::new(bin("backupd"));
        cmd.arg("--socket")
            .arg(&socket)
            .arg("--state-dir")
            .arg(&state_dir);
        if !options.extra_args.iter().any(|a| a == "--log-level") {
            cmd.args(["--log-level", "debug"]);
        }
        if let Some(config) = &options.config {
            let path = dir.path().join("config.toml");
            std::fs::write(&path, config).expect("write config");
            cmd.arg("--config").arg(path);
        }
        cmd.args(&options.extra_args);
        for (k, v) in &options.env {
            cmd.env(k, v);
        }
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn backupd");
        Self {
            dir,
            socket,
            state_dir,
            log,
            child: Some(child),
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Waits until a handshake succeeds; panics with the daemon's log after `deadline`.
    pub fn wait_ready(&self, deadline: Duration) {
        let ready = poll_until(deadline, || {
            let mut conn = RawConn::connect(&self.socket).ok()?;
            conn.handshake().ok()
        });
        if ready.is_none() {
            panic!(
                "backupd not ready within {deadline:?}; log:\n{}",
                self.log_text()
            );
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs backupctl against this daemon.
    pub fn ctl(&self, args: &[&str]) -> Output {
        ctl(&self.socket, args)
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        nix::sys::signal::kill(pid, sig).expect("signal backupd");
    }

    /// Polls for exit; `None` if still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let status = poll_until(timeout, || child.try_wait().expect("try_wait"))?;
        self.child = None;
        Some(status)
    }

    /// Resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// Peak resident set size (VmHWM) in KiB, from /proc, since the start or the last
    /// [`TestDaemon::reset_peak_rss`].
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:")
    }

    /// Waits until start-up work is done (the default repository exists: creating its key with
    /// argon2 peaks at about 70 MB), then resets the peak RSS to the current RSS. Needs root or
    /// the daemon's uid.
    pub fn reset_peak_rss(&self) {
        self.wait_repo("default");
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").expect("reset VmHWM");
    }

    /// Lets other uids reach the socket: the temp dir becomes searchable by all. Start the daemon
    /// with `socket_mode = "0666"` ([`OPEN_SOCKET`]) as well.
    pub fn open_to_all(&self) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod temp dir");
    }

    /// Runs backupctl as `nobody` against this daemon (see [`TestDaemon::open_to_all`]).
    pub fn ctl_as_nobody(&self, args: &[&str]) -> Output {
        assert!(
            is_root(),
            "this test needs root (it runs backupctl as `nobody`); CI runs tests as root"
        );
        Command::new(bin("backupctl"))
            .uid(NOBODY)
            .gid(NOBODY)
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run backupctl as nobody")
    }

    /// Runs backupctl as `uid` (group `uid`, HOME `/`) against this daemon; needs root.
    pub fn ctl_as(&self, uid: u32, args: &[&str]) -> Output {
        Command::new(bin("backupctl"))
            .uid(uid)
            .gid(uid)
            .env("HOME", "/")
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run backupctl as another uid")
    }

    /// Health as JSON, asked by root.
    pub fn health(&self) -> serde_json::Value {
        json_ok(&self.ctl(&["--json", "system", "health"]))
    }

    /// Waits until health reports `want` connections (the one asking included); panics with the
    /// last count after `deadline`.
    pub fn wait_connections(&self, want: u64, deadline: Duration) {
        let live = std::cell::Cell::new(None);
        wait_until_else(
            &format!("{want} connections"),
            deadline,
            || {
                live.set(self.health()["connections"].as_u64());
                (live.get() == Some(want)).then_some(())
            },
            || format!("still {:?} connections", live.get()),
        )
    }
}

impl TestDaemon {
    /// Asks the daemon to stop (`system shutdown`) and waits for it to exit 0.
    pub fn stop(&mut self) {
        let out = self.ctl(&["system", "shutdown"]);
        assert!(out.status.success(), "shutdown refused: {out:?}");
        let status = self
            .wait_exit(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("backupd did not stop; log:\n{}", self.log_text()));
        assert!(status.success(), "backupd exited with {status}");
    }

    /// The registered repository `name` (from `repo list --json`), once it is there.
    pub fn wait_repo(&self, name: &str) -> serde_json::Value {
        wait_until(
            &format!("repository {name}"),
            Duration::from_secs(30),
            || {
                let out = self.ctl(&["--json", "repo", "list"]);
                if !out.status.success() {
                    return None;
                }
                let list: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
                list.as_array()?.iter().find(|r| r["name"] == name).cloned()
            },
        )
    }
}

/// Config for a socket every uid may open.
pub const OPEN_SOCKET: &str = "[server]\nsocket_mode = \"0666\"\n";

/// uid and gid of `nobody` (and `nogroup`) on Debian.
pub const NOBODY: u32 = 65534;

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS:")
}

fn proc_status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} line in /proc/{pid}/status"))
}

/// Runs backupctl with `--socket`.
pub fn ctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(bin("backupctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run backupctl")
}

/// Runs backupctl with `--socket`, failing the test if it has not finished within `deadline`
/// (a hung daemon must fail a test, not hang it).
pub fn ctl_within(socket: &Path, args: &[&str], deadline: Duration) -> Output {
    let mut cmd = Command::new(bin("backupctl"));
    cmd.arg("--socket").arg(socket).args(args);
    output_within(cmd, deadline, &format!("backupctl {args:?}"))
}

/// Runs `cmd` with no stdin and its output captured, failing the test (named `what`) if it has
/// not finished within `deadline`.
pub fn output_within(mut cmd: Command, deadline: Duration, what: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let Some(status) = poll_until(deadline, || child.try_wait().expect("try_wait")) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} did not finish within {deadline:?}");
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Waits for `child` to exit; kills it and fails the test after `deadline` (a hung daemon
/// must fail a test, not hang it).
pub fn wait_child(child: &mut Child, deadline: Duration, what: &str) -> ExitStatus {
    match poll_until(deadline, || child.try_wait().expect("try_wait")) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {deadline:?}");
        }
    }
}

/// A spawned process killed when dropped, so a failing test leaves no daemon behind.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until no job of `d` is queued, running or waiting to retry; fails after `deadline`.
pub fn wait_queue_idle(d: &TestDaemon, deadline: Duration) {
    wait_until("an idle queue", deadline, || {
        let status = json_ok(&d.ctl(&["--json", "queue", "status"]));
        let busy = status["counts"].as_array().is_some_and(|counts| {
            counts.iter().any(|c| {
                matches!(
                    c["state"].as_str(),
                    Some("queued" | "running" | "retry-wait")
                ) && c["count"].as_u64().unwrap_or(0) > 0
            })
        });
        (!busy).then_some(())
    })
}

/// A temp directory any user can traverse (the default is 0700), for trees an unprivileged
/// attacker owns.
pub fn shared_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod tempdir");
    dir
}

/// Gives `path` and everything under it to `uid:gid` (symlinks themselves, not their targets).
pub fn chown_tree(path: &Path, uid: u32, gid: u32) {
    let st = Command::new("chown")
        .args(["-R", "-h", &format!("{uid}:{gid}")])
        .arg(path)
        .status()
        .expect("chown");
    assert!(st.success(), "chown -R {}", path.display());
}

/// stdout of a successful command as JSON; panics with both streams otherwise.
pub fn json_ok(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "command failed: {}", text(output));
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

/// A finished command's status and both streams, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {}; stdout {}; stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A test path as the `&str` a command line takes (test paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 test path")
}

impl TestDaemon {
    /// Submits a job with `--no-wait` and returns its id.
    pub fn submit(&self, args: &[&str]) -> u64 {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        full.push("--no-wait");
        json_ok(&self.ctl(&full))["id"].as_u64().expect("job id")
    }

    /// `queue job ID` as JSON.
    pub fn job(&self, id: u64) -> serde_json::Value {
        json_ok(&self.ctl(&["--json", "queue", "job", &id.to_string()]))
    }

    /// Polls until the job is in one of `states`; panics with the job and the log after `within`.
    pub fn wait_job(&self, id: u64, states: &[&str], within: Duration) -> serde_json::Value {
        let last = std::cell::RefCell::new(serde_json::Value::Null);
        wait_until_else(
            &format!("job {id} in {states:?}"),
            within,
            || {
                let j = self.job(id);
                let done = states.contains(&j["state"].as_str().unwrap_or_default());
                *last.borrow_mut() = j.clone();
                done.then_some(j)
            },
            || format!("{:#}\nlog:\n{}", last.borrow(), self.log_text()),
        )
    }

    /// Polls the daemon's log until it contains every one of `parts` on one line; returns it.
    pub fn wait_log_line(&self, parts: &[&str], within: Duration) -> String {
        wait_until_else(
            &format!("a log line with {parts:?}"),
            within,
            || {
                let log = self.log_text();
                let line = log.lines().find(|l| parts.iter().all(|p| l.contains(p)));
                line.map(str::to_owned)
            },
            || format!("log:\n{}", self.log_text()),
        )
    }
}

/// A uid without a passwd entry, distinct per test process (plus `offset`, for several in one
/// process), so that parallel runs never share a per-uid path such as `/tmp/backupd-UID`.
pub fn spare_uid_at(offset: u32) -> u32 {
    50_000 + std::process::id() % 10_000 * 4 + offset
}

/// [`spare_uid_at`] 0.
pub fn spare_uid() -> u32 {
    spare_uid_at(0)
}

/// The workspace binary `program` to run as `uid` the way `su`/`runuser`/cron start it: no
/// XDG_RUNTIME_DIR (so user mode falls back to `/tmp/backupd-UID`), no other XDG directory, no
/// BACKUPD_SOCKET, and HOME set to `home`.
pub fn as_uid_like_su(program: &str, uid: u32, home: &Path) -> Command {
    let mut cmd = Command::new(bin(program));
    cmd.uid(uid)
        .gid(uid)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_STATE_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("BACKUPD_SOCKET")
        .env("HOME", home)
        .stdin(Stdio::null());
    cmd
}
