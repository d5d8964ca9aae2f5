//! A misbehaving client for the end-to-end tests, run as another uid (`Command::uid`), because
//! the daemon identifies callers by the uid of the process that connects.
//!
//! Modes (the summary is one JSON line on stdout):
//! - `churn SOCKET COUNT REQUEST`: COUNT times connect, handshake, start a streamed REQUEST
//!   (`events`, `health` or `wait:JOB`) and close right away.
//! - `hold SOCKET COUNT`: open COUNT connections, each following events, then keep them until
//!   stdin closes.

use backupd_common::protocol::{
    ClientMessage, QueueRequest, Request, ServerMessage, SystemRequest,
};
use backupd_tests::RawConn;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

fn streamed(name: &str) -> Request {
    match name.split_once(':') {
        Some(("wait", id)) => Request::Queue(QueueRequest::Wait {
            id: id.parse().expect("job id"),
        }),
        _ if name == "health" => Request::System(SystemRequest::WatchHealth {
            interval: Duration::from_secs(3600),
            count: 0,
        }),
        _ => Request::Queue(QueueRequest::Events {
            follow: true,
            backlog: 0,
        }),
    }
}

/// Connects and starts `request`; `Err` carries the daemon's refusal (or the failure).
fn open(socket: &Path, request: &Request) -> Result<RawConn, String> {
    let mut c = RawConn::connect(socket).map_err(|e| e.to_string())?;
    match c.hello(backupd_common::protocol::PROTOCOL_VERSION) {
        Ok(Some(ServerMessage::Welcome(_))) => {}
        Ok(Some(ServerMessage::Fatal(e))) => return Err(e.message),
        other => return Err(format!("{other:?}")),
    }
    c.send(&ClientMessage::Request {
        id: 1.into(),
        request: request.clone(),
    })
    .map_err(|e| e.to_string())?;
    Ok(c)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, socket, count) = match args.as_slice() {
        [_, mode, socket, count, ..] => (
            mode.as_str(),
            Path::new(socket),
            count.parse::<usize>().expect("count"),
        ),
        _ => panic!("usage: hostile_client churn|hold SOCKET COUNT [REQUEST]"),
    };
    let request = streamed(args.get(4).map(String::as_str).unwrap_or("events"));
    let (mut ok, mut refused, mut last_refusal) = (0, 0, String::new());
    let mut held = Vec::new();
    for _ in 0..count {
        match open(socket, &request) {
            Ok(c) => {
                ok += 1;
                if mode == "hold" {
                    held.push(c);
                }
            }
            Err(message) => {
                refused += 1;
                last_refusal = message;
            }
        }
    }
    println!(
        "{}",
        serde_json::json!({"ok": ok, "refused": refused, "last_refusal": last_refusal})
    );
    if mode == "hold" {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    }
}
