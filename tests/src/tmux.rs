//! A real terminal for end-to-end tests of full-screen commands: a private tmux server (its own
//! socket, `tmux -L NAME`, its own config) with one pane of a fixed size, read with
//! `capture-pane` and driven with `send-keys`. The pane stays after its command ends
//! (`remain-on-exit`), so a test can read the exit status. The server is killed on drop.

use crate::wait::{poll_until, wait_until_else};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

pub struct Tmux {
    name: String,
    /// The server's socket: tmux leaves it behind when the server is killed.
    socket: Option<std::path::PathBuf>,
    _config: tempfile::TempDir,
}

impl Tmux {
    /// Starts a server named after `test` and this process running the shell command line
    /// `command` in a `width`×`height` pane. Panics with the fix when tmux is not installed.
    pub fn start(test: &str, width: u16, height: u16, command: &str) -> Self {
        let found = Command::new("tmux").arg("-V").output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "tmux not found: the terminal tests need it (`apt-get install tmux`; .ci/run installs it)"
        );
        let config = tempfile::tempdir().expect("tempdir");
        let conf = config.path().join("tmux.conf");
        // remain-on-exit from the start: set afterwards, a command that ends at once would take
        // its pane (and its exit status) with it.
        std::fs::write(&conf, "set-option -g remain-on-exit on\n").expect("tmux config");
        let mut tmux = Self {
            name: format!("backupd-{test}-{}", std::process::id()),
            socket: None,
            _config: config,
        };
        let out = tmux.run_with_config(
            &conf,
            &[
                "new-session",
                "-d",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
                command,
            ],
        );
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            crate::text(&out)
        );
        tmux.socket = Some(tmux.format("#{socket_path}").into());
        tmux
    }

    fn run_with_config(&self, conf: &Path, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.name)
            .arg("-f")
            .arg(conf)
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("run tmux")
    }

    /// The pane's visible text, one line per row.
    pub fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p"]);
        assert!(
            out.status.success(),
            "tmux capture-pane: {}",
            crate::text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A tmux format about the pane, e.g. `#{pane_dead}`.
    pub fn format(&self, format: &str) -> String {
        let out = self.run(&["display-message", "-p", format]);
        assert!(
            out.status.success(),
            "tmux display-message: {}",
            crate::text(&out)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Types keys as tmux names them: `q`, `C-c`, `Escape`, `Enter`.
    pub fn send_keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend_from_slice(keys);
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "tmux send-keys: {}",
            crate::text(&out)
        );
    }

    /// Polls the screen until `ready` accepts it; panics with `what` and the last screen after
    /// `deadline`.
    pub fn wait_screen(
        &self,
        what: &str,
        deadline: Duration,
        ready: impl Fn(&str) -> bool,
    ) -> String {
        let last = std::cell::RefCell::new(String::new());
        wait_until_else(
            what,
            deadline,
            || {
                let screen = self.screen();
                let done = ready(&screen);
                *last.borrow_mut() = screen.clone();
                done.then_some(screen)
            },
            || format!("screen:\n{}", last.borrow()),
        )
    }

    /// Waits for the pane's command to end; returns its exit status if tmux recorded one
    /// (panics if a signal ended it).
    ///
    /// tmux marks a pane dead when its terminal closes, which can come before it reaps the
    /// process, and tmux 3.3 now and then never shows the status of a pane that died so (seen
    /// here about one time in ten): a test that needs the status for sure has the pane's shell
    /// print `$?` as well.
    pub fn wait_dead(&self, deadline: Duration) -> Option<i32> {
        let state = || self.format("#{pane_dead}:#{pane_dead_status}:#{pane_dead_signal}");
        wait_until_else(
            "the pane's command to end",
            deadline,
            || state().starts_with("1:").then_some(()),
            || format!("screen:\n{}", self.screen()),
        );
        let recorded = poll_until(Duration::from_secs(2), || {
            let state = state();
            let (status, signal) = state.trim_start_matches("1:").split_once(':')?;
            (!status.is_empty() || !signal.is_empty())
                .then(|| (status.to_owned(), signal.to_owned()))
        });
        let (status, signal) = recorded?;
        assert!(
            signal.is_empty(),
            "the pane's command was killed by signal {signal}"
        );
        Some(
            status
                .parse()
                .unwrap_or_else(|_| panic!("pane_dead_status {status:?}")),
        )
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        if let Some(socket) = &self.socket {
            let _ = std::fs::remove_file(socket);
        }
    }
}

/// `text` as one single-quoted shell word.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
