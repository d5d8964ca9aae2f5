//! The daemon run in-process through `backupd::run`, as `main` runs it.

use backupd::server::listener::{Listener, SocketPermissions};
use backupd::settings::{Overrides, Settings};
use backupd_common::client::{ClientError, Connection};
use backupd_common::error::ErrorCode;
use backupd_common::protocol::{Progress, Request, Response, SystemRequest};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct InProcess {
    _dir: tempfile::TempDir,
    socket: std::path::PathBuf,
    cancel: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), backupd::error::Error>>,
}

fn start() -> InProcess {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("d.sock");
    let settings = Settings::resolve(Overrides {
        socket: Some(socket.clone()),
        state_dir: Some(dir.path().join("state")),
        config_file: Some(dir.path().join("config.toml")),
        log_level: None,
        watch: Vec::new(),
    });
    // No config file yet: resolve must say which file is missing.
    let err = settings.expect_err("missing --config file");
    assert!(err.to_string().contains("config.toml"), "{err}");
    std::fs::write(dir.path().join("config.toml"), "").expect("write config");
    let settings = Settings::resolve(Overrides {
        socket: Some(socket.clone()),
        state_dir: Some(dir.path().join("state")),
        config_file: Some(dir.path().join("config.toml")),
        log_level: None,
        watch: Vec::new(),
    })
    .expect("settings");
    let listener = Listener::bind(
        &socket,
        &SocketPermissions {
            mode: 0o600,
            group: None,
            group_required: false,
        },
    )
    .expect("bind");
    let cancel = CancellationToken::new();
    let handle = tokio::spawn(backupd::run(settings, listener, cancel.clone(), None));
    InProcess {
        _dir: dir,
        socket,
        cancel,
        handle,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_request_is_answered_before_the_daemon_stops() {
    let d = start();
    let mut conn = Connection::connect(&d.socket, "test")
        .await
        .expect("connect");
    assert_eq!(
        conn.call(Request::System(SystemRequest::Shutdown))
            .await
            .expect("reply"),
        Response::ShuttingDown
    );
    let result = tokio::time::timeout(Duration::from_secs(10), d.handle)
        .await
        .expect("run returns")
        .expect("join");
    result.expect("clean stop");
    assert!(d.cancel.is_cancelled());
    assert!(!d.socket.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_reply_is_ended_with_unavailable_when_the_daemon_stops() {
    let d = start();
    let mut conn = Connection::connect(&d.socket, "test")
        .await
        .expect("connect");
    let cancel = d.cancel.clone();
    let mut seen = 0;
    let result = conn
        .call_streaming(
            Request::System(SystemRequest::WatchHealth {
                interval: Duration::from_millis(100),
                count: 0,
            }),
            |p| {
                let Progress::Health(h) = p else {
                    panic!("unexpected progress frame {p:?}")
                };
                assert_eq!(h.version, backupd_common::VERSION);
                seen += 1;
                if seen == 2 {
                    cancel.cancel();
                }
            },
        )
        .await;
    match result {
        Err(ClientError::Remote(e)) => assert_eq!(e.code, ErrorCode::Unavailable),
        Ok(Response::Done) => {} // the stream's own end may win the race
        other => panic!("unexpected end of stream: {other:?}"),
    }
    assert!(seen >= 2);
    tokio::time::timeout(Duration::from_secs(10), d.handle)
        .await
        .expect("run returns")
        .expect("join")
        .expect("clean stop");
}
