//! Issue 9, item 7: an observer (`nobody`) learns no file names from the queue. Jobs with path
//! arguments, a restore target and a failure quoting a path exist; every queue view an
//! observer can reach, in JSON and as text, must not contain any of those names. Needs root.

use backupd_tests::{json_ok, DaemonOptions, TestDaemon, NOBODY, OPEN_SOCKET};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Names that appear only in job arguments, results and errors.
const SECRETS: [&str; 4] = [
    "private-alice-dir",
    "secret-plan-file",
    "missing-secret-path",
    "restore-target-dir",
];

/// A secret as text and as the byte list `--json` prints raw paths as (`[112,114,...]`).
fn forms(secret: &str) -> [String; 2] {
    let bytes: Vec<String> = secret.bytes().map(|b| b.to_string()).collect();
    [secret.to_owned(), bytes.join(",")]
}

fn shows(text: &str, secret: &str) -> bool {
    forms(secret).iter().any(|f| text.contains(f.as_str()))
}

fn assert_no_secret(what: &str, output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for secret in SECRETS {
        assert!(!shows(&text, secret), "{what} shows {secret:?}:\n{text}");
    }
}

#[test]
fn observers_see_no_job_arguments_results_or_error_texts() {
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some(OPEN_SOCKET.into()),
        ..Default::default()
    });
    d.open_to_all();
    let private = d.dir.path().join("private-alice-dir");
    std::fs::create_dir(&private).expect("mkdir");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::write(private.join("secret-plan-file"), b"plans").expect("write");
    let private = private.display().to_string();

    // An observer follows events while the jobs run.
    let mut follower = Command::new(backupd_tests::bin("backupctl"))
        .uid(NOBODY)
        .gid(NOBODY)
        .arg("--socket")
        .arg(&d.socket)
        .args(["--json", "events", "--follow", "--backlog", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn follower");

    let ok = json_ok(&d.ctl(&["--json", "backup", &private]));
    let backup_id = ok["job"].as_u64().expect("job id").to_string();
    // Fails while it runs (the snapshot exists, the path in it does not), so it is a job with
    // an error text that names a path.
    let missing = format!(
        "{}:/missing-secret-path",
        ok["snapshot"].as_str().expect("snapshot id")
    );
    let elsewhere = d.dir.path().join("restore-elsewhere");
    let failed = d.ctl(&[
        "--json",
        "restore",
        &missing,
        "--target",
        elsewhere.to_str().expect("utf8"),
        "--retries",
        "0",
    ]);
    assert!(!failed.status.success(), "restore of a missing path fails");
    let failed_text = String::from_utf8_lossy(&failed.stdout).into_owned();
    assert!(
        shows(&failed_text, "missing-secret-path"),
        "admins see the error: {failed_text}"
    );
    let target = d
        .dir
        .path()
        .join("restore-target-dir")
        .display()
        .to_string();
    json_ok(&d.ctl(&["--json", "restore", "latest", "--target", &target]));
    json_ok(&d.ctl(&[
        "--json",
        "source",
        "add",
        &private,
        "--no-watch",
        "--rescan-every",
        "1h",
    ]));
    // Admins still see everything.
    let admin_view = d.ctl(&["--json", "queue", "job", &backup_id]);
    let admin_text = String::from_utf8_lossy(&admin_view.stdout);
    assert!(shows(&admin_text, "private-alice-dir"), "{admin_text}");

    let history = json_ok(&d.ctl_as_nobody(&["--json", "queue", "history"]));
    let ids: Vec<String> = history
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["id"].to_string())
        .collect();
    assert!(ids.len() >= 3, "observers still see the jobs: {history}");
    assert!(history.to_string().contains("dead-letter"), "{history}");

    let mut views: Vec<Vec<String>> = vec![
        vec!["queue".into(), "status".into()],
        vec!["queue".into(), "history".into()],
        vec!["queue".into(), "dlq".into(), "list".into()],
        vec!["events".into(), "--backlog".into(), "1000".into()],
        vec!["source".into(), "list".into()],
    ];
    for id in &ids {
        views.push(vec!["queue".into(), "job".into(), id.clone()]);
    }
    for view in &views {
        let args: Vec<&str> = view.iter().map(String::as_str).collect();
        assert_no_secret(&view.join(" "), &d.ctl_as_nobody(&args));
        let mut json = vec!["--json"];
        json.extend(&args);
        assert_no_secret(
            &format!("--json {}", view.join(" ")),
            &d.ctl_as_nobody(&json),
        );
    }
    let text = d.ctl_as_nobody(&["queue", "job", &backup_id]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("(hidden)"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );

    std::thread::sleep(Duration::from_millis(500));
    let _ = follower.kill();
    let mut streamed = String::new();
    follower
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut streamed)
        .expect("read events");
    let _ = follower.wait();
    assert!(
        streamed.contains("dead-letter"),
        "the stream went on: {streamed}"
    );
    for secret in SECRETS {
        assert!(
            !shows(&streamed, secret),
            "events --follow shows {secret:?}"
        );
    }
}
