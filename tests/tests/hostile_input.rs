//! Hostile clients never hurt the daemon: each gets an error frame or a close, and afterwards the
//! daemon still answers health with a small RSS.

use backupd_common::error::ErrorCode;
use backupd_common::protocol::{ClientMessage, Request, ServerMessage, SystemRequest};
use backupd_tests::{json_ok, wait_until, DaemonOptions, RawConn, TestDaemon};
use std::net::Shutdown;
use std::time::Duration;

fn fatal_code(message: Option<ServerMessage>) -> (ErrorCode, String) {
    match message {
        Some(ServerMessage::Fatal(e)) => (e.code, e.message),
        other => panic!("expected a Fatal error frame, got {other:?}"),
    }
}

fn daemon() -> TestDaemon {
    TestDaemon::start_with(DaemonOptions {
        config: Some("[server]\nhandshake_timeout = \"1s\"\n".into()),
        ..Default::default()
    })
}

fn assert_still_healthy(d: &TestDaemon) {
    let health = json_ok(&d.ctl(&["--json", "system", "health"]));
    assert_eq!(health["status"], "ok");
}

#[test]
fn huge_length_prefix_gets_frame_too_large_and_a_close() {
    let d = daemon();
    let mut c = RawConn::connect(&d.socket).expect("connect");
    c.send_raw(&[0xFF, 0xFF, 0xFF, 0xFF]).expect("send");
    let (code, message) = fatal_code(c.recv().expect("recv"));
    assert_eq!(code, ErrorCode::FrameTooLarge);
    assert!(message.contains("4294967295"), "{message}");
    assert!(c.closed_by_peer());
    assert_still_healthy(&d);
}

#[test]
fn huge_length_prefix_after_the_handshake_is_refused_too() {
    let d = daemon();
    let mut c = RawConn::connect(&d.socket).expect("connect");
    c.handshake().expect("handshake");
    c.send_raw(&[0x7F, 0xFF, 0xFF, 0xFF, 1, 2, 3])
        .expect("send");
    let (code, _) = fatal_code(c.recv().expect("recv"));
    assert_eq!(code, ErrorCode::FrameTooLarge);
    assert_still_healthy(&d);
}

#[test]
fn valid_prefix_with_random_bytes_is_malformed() {
    let d = daemon();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..20 {
        let len = 1 + round * 37;
        let mut frame = (len as u32).to_be_bytes().to_vec();
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            frame.push(seed as u8);
        }
        let mut c = RawConn::connect(&d.socket).expect("connect");
        c.send_raw(&frame).expect("send");
        // Random bytes may happen to decode as a Hello of a wrong version; any Fatal is right.
        let (code, _) = fatal_code(c.recv().expect("recv"));
        assert!(
            matches!(code, ErrorCode::Malformed | ErrorCode::VersionMismatch),
            "round {round}: {code:?}"
        );
        assert!(c.closed_by_peer());
    }
    assert_still_healthy(&d);
}

#[test]
fn truncated_frame_is_closed_or_timed_out() {
    let d = daemon();
    // Half a frame, then the client stops writing: the daemon closes without a reply.
    let mut c = RawConn::connect(&d.socket).expect("connect");
    c.send_raw(&[0, 0, 0, 100, 1, 2, 3]).expect("send");
    c.stream.shutdown(Shutdown::Write).expect("shutdown");
    assert!(matches!(c.recv(), Ok(None)));

    // Half a frame, then silence: the handshake timeout answers.
    let mut c = RawConn::connect(&d.socket).expect("connect");
    c.send_raw(&[0, 0, 0, 100, 1, 2, 3]).expect("send");
    let (code, message) = fatal_code(c.recv().expect("recv"));
    assert_eq!(code, ErrorCode::Timeout);
    assert!(message.contains("Hello"), "{message}");
    assert_still_healthy(&d);
}

#[test]
fn wrong_protocol_version_names_both_versions() {
    let d = daemon();
    let mut c = RawConn::connect(&d.socket).expect("connect");
    let (code, message) = fatal_code(c.hello(999).expect("hello"));
    assert_eq!(code, ErrorCode::VersionMismatch);
    assert!(message.contains("version 999"), "{message}");
    assert!(
        message.contains(&format!(
            "version {}",
            backupd_common::protocol::PROTOCOL_VERSION
        )),
        "{message}"
    );
    assert!(c.closed_by_peer());
}

#[test]
fn request_before_hello_is_refused() {
    let d = daemon();
    let mut c = RawConn::connect(&d.socket).expect("connect");
    c.send(&ClientMessage::Request {
        id: 1.into(),
        request: Request::System(SystemRequest::Health),
    })
    .expect("send");
    let (code, message) = fatal_code(c.recv().expect("recv"));
    assert_eq!(code, ErrorCode::Malformed);
    assert!(message.contains("Hello"), "{message}");
}

#[test]
fn idle_connections_and_connect_close_leave_the_daemon_healthy_and_small() {
    let d = daemon();
    for _ in 0..200 {
        drop(RawConn::connect(&d.socket).expect("connect"));
    }
    let mut idle = Vec::new();
    for i in 0..300 {
        let mut c = RawConn::connect(&d.socket).expect("connect");
        if i % 2 == 0 {
            c.handshake().expect("handshake");
        }
        idle.push(c);
    }
    // With 300 connections held open, new clients are still served.
    assert_still_healthy(&d);
    let health = json_ok(&d.ctl(&["--json", "system", "health"]));
    assert!(
        health["connections"].as_u64().expect("connections") >= 150,
        "{health}"
    );
    let rss = d.rss_kib();
    assert!(rss < 100 * 1024, "RSS {rss} KiB with 300 idle connections");
    drop(idle);
    assert_still_healthy(&d);
}

#[test]
fn silent_handshake_is_timed_out() {
    let d = daemon();
    let mut c = RawConn::connect(&d.socket).expect("connect");
    let start = std::time::Instant::now();
    let (code, _) = fatal_code(c.recv().expect("recv"));
    assert_eq!(code, ErrorCode::Timeout);
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn idle_timeout_closes_a_silent_connection() {
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some("[server]\nidle_timeout = \"300ms\"\n".into()),
        ..Default::default()
    });
    let mut c = RawConn::connect(&d.socket).expect("connect");
    c.handshake().expect("handshake");
    let (code, message) = fatal_code(c.recv().expect("recv"));
    assert_eq!(code, ErrorCode::Timeout);
    assert!(message.contains("idle"), "{message}");
    assert!(c.closed_by_peer());
}

#[test]
fn connection_cap_answers_busy_with_retry_after() {
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some("[server]\nmax_connections = 4\n".into()),
        ..Default::default()
    });
    // The readiness probe's connection is released asynchronously: wait until only the health
    // request itself is being served.
    d.wait_connections(1, Duration::from_secs(5));
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = RawConn::connect(&d.socket).expect("connect");
        c.handshake().expect("handshake");
        held.push(c);
    }
    let mut over = RawConn::connect(&d.socket).expect("connect");
    match over.recv().expect("recv") {
        Some(ServerMessage::Fatal(e)) => {
            assert_eq!(e.code, ErrorCode::Busy);
            assert!(e.retry_after_ms.is_some());
            assert!(e.message.contains("max_connections"), "{}", e.message);
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    held.pop();
    // The freed slot is usable again (the daemon notices the close asynchronously).
    wait_until("the freed slot", Duration::from_secs(5), || {
        d.ctl(&["system", "health"]).status.success().then_some(())
    });
}
