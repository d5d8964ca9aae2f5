//! The repository passphrase kept by the daemon: `repo init` tells the user, on the command
//! line, that the key must be exported and kept elsewhere.

use backupd_tests::TestDaemon;

#[test]
fn repo_init_tells_the_user_to_export_a_generated_key() {
    let d = TestDaemon::start();
    let repo = d.dir.path().join("generated");
    let out = d.ctl(&[
        "repo",
        "init",
        "--name",
        "gen",
        "--path",
        repo.to_str().expect("utf8"),
    ]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("backupctl repo key export gen") && stderr.contains("gen.key"),
        "{stderr}"
    );
    // With --json the warning stays off stdout, which remains one JSON value.
    let repo2 = d.dir.path().join("generated2");
    let out = d.ctl(&[
        "--json",
        "repo",
        "init",
        "--name",
        "gen2",
        "--path",
        repo2.to_str().expect("utf8"),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(v["name"], "gen2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("backupctl repo key export gen2"));
}

#[test]
fn repo_init_with_a_passphrase_says_where_the_copy_is() {
    let d = TestDaemon::start();
    let pw = d.dir.path().join("pw");
    std::fs::write(&pw, "horse").expect("pw");
    let repo = d.dir.path().join("given");
    let out = d.ctl(&[
        "repo",
        "init",
        "--name",
        "given",
        "--path",
        repo.to_str().expect("utf8"),
        "--password-file",
        pw.to_str().expect("utf8"),
    ]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("given.key") && stderr.contains("Keep the passphrase"),
        "{stderr}"
    );
}
