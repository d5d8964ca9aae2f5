//! Many clients at once.

use backupd_tests::{bin, TestDaemon};
use std::process::{Command, Stdio};

#[test]
fn hundred_concurrent_backupctl_processes_all_succeed() {
    let d = TestDaemon::start();
    let children: Vec<_> = (0..100)
        .map(|_| {
            Command::new(bin("backupctl"))
                .arg("--socket")
                .arg(&d.socket)
                .args(["--json", "system", "health"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn backupctl")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v["status"], "ok");
    }
}
