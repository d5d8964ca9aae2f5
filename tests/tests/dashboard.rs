//! `backupctl dashboard` in a real terminal (tmux, 80×24): what it shows of a live daemon, that
//! every quit key ends it with status 0 and gives the terminal back (alternate screen left,
//! cursor shown, raw mode off), that a daemon going away is shown and found again, and that it
//! refuses to run without a terminal or with --json.

use backupd_tests::{bin, json_ok, s, shell_quote, text, DaemonOptions, TestDaemon, Tmux};
use std::path::Path;
use std::time::Duration;

/// Long enough for a first refresh on a loaded CI machine; the dashboard refreshes every 500 ms.
const SHOWN: Duration = Duration::from_secs(30);

/// A daemon with something on every panel: a source with a snapshot, a job running for
/// minutes, a dead letter (which lowers the health score), and a sample every second.
fn busy_daemon() -> (TestDaemon, u64) {
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some("[perf]\nsample_every = \"1s\"\n".into()),
        ..DaemonOptions::default()
    });
    let src = d.dir.path().join("webroot");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("index.html"), "hello").expect("write");
    let out = d.ctl(&["source", "add", s(&src), "--name", "webroot"]);
    assert!(out.status.success(), "source add: {}", text(&out));
    backupd_tests::wait_until("webroot's first snapshot", SHOWN, || {
        let list = json_ok(&d.ctl(&["--json", "source", "list"]));
        list[0]["last_snapshot"].as_str().map(str::to_owned)
    });
    let failed = d.submit(&[
        "queue",
        "add",
        "noop",
        "--fail-attempts",
        "1",
        "--permanent",
    ]);
    d.wait_job(failed, &["dead-letter"], SHOWN);
    let running = d.submit(&["queue", "add", "noop", "--duration", "10m"]);
    d.wait_job(running, &["running"], SHOWN);
    (d, running)
}

/// A shell line that runs the dashboard, then records how the terminal was left (`stty -a`
/// into `tty_state`), prints the exit status and waits for Enter before exiting with it: the
/// pane stays alive, so tmux can still say whether the cursor is shown.
fn dashboard_command(socket: &Path, tty_state: &Path) -> String {
    format!(
        "{ctl} --socket {socket} dashboard --interval 500ms; st=$?; stty -a > {state}; \
         echo \"dashboard exited $st\"; read _; exit $st",
        ctl = shell_quote(s(&bin("backupctl"))),
        socket = shell_quote(s(socket)),
        state = shell_quote(s(tty_state)),
    )
}

/// The dashboard's first screen with the daemon's data: the score, the source, the job.
fn wait_for_data(tmux: &Tmux, job: u64) -> String {
    let job = format!("#{job} noop");
    tmux.wait_screen("the dashboard with the daemon's data", SHOWN, |screen| {
        screen.contains("score ")
            && screen.contains("/100")
            && screen.contains("webroot")
            && screen.contains(&job)
    })
}

/// Presses `key`, then checks that the dashboard exited 0 and left the terminal as it found it.
fn quit_and_check_terminal(tmux: &Tmux, key: &str, tty_state: &Path) {
    tmux.send_keys(&[key]);
    let screen = tmux.wait_screen(
        &format!("the dashboard to end on {key}"),
        Duration::from_secs(10),
        |screen| screen.contains("dashboard exited"),
    );
    assert!(screen.contains("dashboard exited 0"), "{key}: {screen}");
    // Back on the normal screen: the dashboard's panels went with the alternate one.
    assert_eq!(tmux.format("#{alternate_on}"), "0", "{key}: {screen}");
    assert!(!screen.contains("resources, last hour"), "{key}: {screen}");
    assert_eq!(tmux.format("#{cursor_flag}"), "1", "{key}: cursor hidden");
    let stty = std::fs::read_to_string(tty_state).expect("stty output");
    let flags: Vec<&str> = stty.split([' ', ';', '\n']).collect();
    for cooked in ["icanon", "echo", "isig", "icrnl", "opost"] {
        assert!(
            flags.contains(&cooked),
            "{key}: the terminal was left in raw mode (no {cooked}): {stty}"
        );
    }
    // The shell exits with the dashboard's status: tmux says the same, when it recorded it
    // (see `Tmux::wait_dead`; "dashboard exited 0" above is the status for sure).
    tmux.send_keys(&["Enter"]);
    if let Some(status) = tmux.wait_dead(Duration::from_secs(10)) {
        assert_eq!(status, 0, "{key}");
    }
}

#[test]
fn the_dashboard_shows_score_sources_jobs_and_q_restores_the_terminal() {
    let (d, job) = busy_daemon();
    let state = d.dir.path().join("tty-q");
    let tmux = Tmux::start("dash-q", 80, 24, &dashboard_command(&d.socket, &state));
    let screen = wait_for_data(&tmux, job);
    assert!(screen.contains("1 dead-letter"), "{screen}");
    // The dead letter is one of the factors that lowered the score.
    assert!(screen.contains("dead_letters"), "{screen}");
    // Under the running job its gauge row (a noop job reports no totals: what it did so far).
    let lines: Vec<&str> = screen.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains(&format!("#{job} noop")))
        .expect("job row");
    assert!(
        lines.get(at + 1).is_some_and(|l| l.contains("files")),
        "{screen}"
    );
    let rss = tmux.wait_screen("a daemon rss sparkline", SHOWN, |screen| {
        screen.lines().any(|l| {
            l.contains("daemon rss") && l.chars().any(|c| ('\u{2581}'..='\u{2588}').contains(&c))
        })
    });
    for line in rss.lines() {
        assert!(
            line.chars().count() <= 80,
            "wider than the terminal: {line}"
        );
    }
    assert_eq!(tmux.format("#{alternate_on}"), "1", "{screen}");
    quit_and_check_terminal(&tmux, "q", &state);
}

#[test]
fn ctrl_c_and_escape_end_the_dashboard_cleanly_too() {
    let (d, job) = busy_daemon();
    for (name, key) in [("ctrl-c", "C-c"), ("escape", "Escape")] {
        let state = d.dir.path().join(format!("tty-{name}"));
        let tmux = Tmux::start(
            &format!("dash-{name}"),
            80,
            24,
            &dashboard_command(&d.socket, &state),
        );
        wait_for_data(&tmux, job);
        quit_and_check_terminal(&tmux, key, &state);
    }
}

#[test]
fn a_daemon_that_goes_away_is_shown_unreachable_and_found_again() {
    // The dashboard talks to a symlink, so that a second daemon can take the first one's
    // place under the same name.
    let mut first = TestDaemon::start();
    let link = first.dir.path().join("current.sock");
    std::os::unix::fs::symlink(&first.socket, &link).expect("symlink");
    let state = first.dir.path().join("tty");
    let tmux = Tmux::start("dash-gone", 80, 24, &dashboard_command(&link, &state));
    tmux.wait_screen("the score", SHOWN, |screen| screen.contains("/100"));

    first.stop();
    let screen = tmux.wait_screen("the unreachable banner", SHOWN, |screen| {
        screen.contains("daemon unreachable:") && screen.contains("retrying")
    });
    assert_eq!(tmux.format("#{pane_dead}"), "0", "{screen}");

    let second = TestDaemon::start();
    let next = first.dir.path().join("next.sock");
    std::os::unix::fs::symlink(&second.socket, &next).expect("symlink");
    std::fs::rename(&next, &link).expect("swap the symlink");
    tmux.wait_screen("the dashboard to reconnect", SHOWN, |screen| {
        screen.contains("/100") && !screen.contains("unreachable")
    });
    quit_and_check_terminal(&tmux, "q", &state);
}

#[test]
fn without_a_terminal_or_with_json_the_dashboard_refuses_and_says_what_to_use() {
    // No daemon needed: both are refused before connecting.
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("none.sock");
    let out = backupd_tests::ctl(&socket, &["dashboard"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dashboard needs a terminal")
            && err.contains("system health --watch")
            && err.contains("perf current"),
        "{err}"
    );

    let out = backupd_tests::ctl(&socket, &["--json", "dashboard"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dashboard has no --json"), "{err}");
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON error");
    assert_eq!(reply["error"]["code"], "Usage", "{reply}");

    let out = backupd_tests::ctl(&socket, &["dashboard", "--interval", "10ms"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
}
