//! Runs one hook command: no shell, stdin null, a clean environment, in its own process group,
//! with stdout and stderr captured together (the last [`OUTPUT_MAX`] bytes). On timeout or
//! cancellation the whole group is killed; a run whose future is dropped (the daemon exiting
//! mid-hook) kills the group too, so no hook outlives the daemon's interest in it.
//!
//! What it never does: kill a process group after its leader was reaped (the id could belong
//! to someone else by then). Processes a hook leaves behind after exiting are not waited for,
//! and their output after [`DRAIN`] is not captured.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::os::fd::OwnedFd;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

/// Output kept of one run: the last this many bytes.
pub const OUTPUT_MAX: usize = 16 << 10;
/// How long output is still read after the hook exited (children it left may hold the pipe).
const DRAIN: Duration = Duration::from_secs(1);

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Exited(ExitStatus),
    /// Killed after running past its timeout.
    TimedOut,
    /// Killed because its job was cancelled (or timed out).
    Cancelled,
}

/// A finished run.
#[derive(Debug)]
pub struct Ran {
    pub end: End,
    /// The last [`OUTPUT_MAX`] bytes of stdout and stderr, interleaved as written.
    pub output: Vec<u8>,
    /// Whether earlier output was dropped.
    pub truncated: bool,
}

/// Runs `argv` (absolute program path first) with exactly `env`. Errors are failures to start.
pub async fn run(
    argv: &[String],
    env: &[(String, String)],
    timeout: Duration,
    cancel: &CancellationToken,
) -> std::io::Result<Ran> {
    let Some((program, args)) = argv.split_first() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty command",
        ));
    };
    let (reader, writer) = std::io::pipe()?;
    let child = {
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .process_group(0);
        // `command` holds the pipe's write end; it goes with it at the end of this block, so
        // the reader sees end-of-file once the hook's processes close theirs.
        command.spawn()?
    };
    let mut child = child;
    let mut group = Group(child.id().map(|id| Pid::from_raw(id as i32)));
    let mut output = Tail::default();
    let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader)).ok();
    let mut buf = vec![0u8; 8192];
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let end = loop {
        tokio::select! {
            status = child.wait() => break End::Exited(status?),
            read = read_some(&mut pipe, &mut buf) => output.take(&mut pipe, read, &buf),
            _ = &mut deadline => break End::TimedOut,
            _ = cancel.cancelled() => break End::Cancelled,
        }
    };
    if !matches!(end, End::Exited(_)) {
        group.kill();
        child.wait().await?;
    }
    group.disarm();
    let drain = tokio::time::sleep(DRAIN);
    tokio::pin!(drain);
    while pipe.is_some() {
        tokio::select! {
            read = read_some(&mut pipe, &mut buf) => output.take(&mut pipe, read, &buf),
            _ = &mut drain => break,
        }
    }
    Ok(Ran {
        end,
        truncated: output.truncated,
        output: output.bytes,
    })
}

/// Reads from the pipe while it is open; pends forever once it is closed (the caller stops
/// polling it then).
async fn read_some(
    pipe: &mut Option<tokio::net::unix::pipe::Receiver>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match pipe {
        Some(p) => p.read(buf).await,
        None => std::future::pending().await,
    }
}

/// The last [`OUTPUT_MAX`] bytes written.
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
    truncated: bool,
}

impl Tail {
    /// Keeps what a read gave; end-of-file or an error closes the pipe.
    fn take(
        &mut self,
        pipe: &mut Option<tokio::net::unix::pipe::Receiver>,
        read: std::io::Result<usize>,
        buf: &[u8],
    ) {
        match read {
            Ok(0) | Err(_) => *pipe = None,
            Ok(n) => {
                self.bytes.extend_from_slice(&buf[..n]);
                let over = self.bytes.len().saturating_sub(OUTPUT_MAX);
                if over > 0 {
                    self.bytes.drain(..over);
                    self.truncated = true;
                }
            }
        }
    }
}

/// The hook's process group, killed unless disarmed once its leader was reaped.
struct Group(Option<Pid>);

impl Group {
    fn kill(&mut self) {
        if let Some(pgid) = self.0 {
            // ESRCH: the group is gone already, which is what we want.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::time::Instant;

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    #[tokio::test]
    async fn output_of_both_streams_is_kept_and_the_environment_is_exactly_what_was_given() {
        let env = vec![("BACKUPD_HOOK".to_owned(), "before".to_owned())];
        let ran = run(
            &sh("echo out; echo err >&2; echo \"$BACKUPD_HOOK ${HOME:-nohome}\"; exit 3"),
            &env,
            Duration::from_secs(10),
            &CancellationToken::new(),
        )
        .await
        .expect("runs");
        assert_eq!(ran.end, End::Exited(ExitStatus::from_raw(3 << 8)));
        assert_eq!(
            String::from_utf8_lossy(&ran.output),
            "out\nerr\nbefore nohome\n"
        );
        assert!(!ran.truncated);
    }

    #[tokio::test]
    async fn only_the_last_bytes_of_long_output_are_kept() {
        let ran = run(
            &sh("i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done"),
            &[],
            Duration::from_secs(10),
            &CancellationToken::new(),
        )
        .await
        .expect("runs");
        assert!(ran.truncated);
        assert_eq!(ran.output.len(), OUTPUT_MAX);
        assert!(ran.output.ends_with(b"line 2999\n"));
    }

    #[tokio::test]
    async fn a_hook_past_its_timeout_is_killed_with_the_children_it_started() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("child-survived");
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let started = Instant::now();
        let ran = run(
            &sh(&script),
            &[],
            Duration::from_millis(300),
            &CancellationToken::new(),
        )
        .await
        .expect("runs");
        assert_eq!(ran.end, End::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_secs(3));
        assert!(!marker.exists(), "the hook's background child outlived it");
    }

    #[tokio::test]
    async fn cancelling_kills_a_running_hook() {
        let cancel = CancellationToken::new();
        let later = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            later.cancel();
        });
        let started = Instant::now();
        let ran = run(&sh("sleep 30"), &[], Duration::from_secs(60), &cancel)
            .await
            .expect("runs");
        assert_eq!(ran.end, End::Cancelled);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_missing_program_is_an_error_to_start() {
        let err = run(
            &["/nonexistent/hook".to_owned()],
            &[],
            Duration::from_secs(1),
            &CancellationToken::new(),
        )
        .await
        .expect_err("no such program");
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
