//! The hostile local user of the end-to-end tests, one binary for every attack. Tests start it
//! as another uid (`Command::uid`/`gid`, see `backupd_tests::Attacker`), because the daemon
//! identifies callers by the uid of the process that connects and trusts no tree it can write.
//!
//! Modes:
//! - `swap A B [A B]...`: races the daemon by exchanging each pair of directory entries with
//!   `renameat2(RENAME_EXCHANGE)`, round and round until killed; prints `racing` first.
//! - `churn SOCKET COUNT [REQUEST]`: COUNT times connect, handshake, start a streamed REQUEST
//!   (`events`, `health` or `wait:JOB`) and close right away; prints a JSON summary line.
//! - `hold SOCKET COUNT [REQUEST]`: opens COUNT such connections and keeps them until stdin
//!   closes; prints the JSON summary line once they are open.
//! - `session SOCKET`: one connection kept open; prints `ready` after the handshake, then for
//!   each line `snapshots` on stdin asks for the snapshot list and prints `snapshots N` (or
//!   `error ...`), so a test can change the caller's role between two requests.
//! - `listen SOCKET LOG`: a fake daemon. Binds SOCKET, prints `listening`, and for every client
//!   appends `received N` to LOG: the bytes it sent within a second (a Hello is about 30).

use backupd_common::protocol::{
    ClientMessage, QueueRequest, Request, ServerMessage, SystemRequest,
};
use backupd_tests::RawConn;
use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str =
    "usage: attacker swap A B [A B]... | churn|hold SOCKET COUNT [REQUEST] | session SOCKET | \
     listen SOCKET LOG";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [mode, pairs @ ..] if mode == "swap" && !pairs.is_empty() && pairs.len() % 2 == 0 => {
            swap(pairs)
        }
        [mode, socket, count, rest @ ..] if mode == "churn" || mode == "hold" => {
            let Ok(count) = count.parse::<usize>() else {
                eprintln!("attacker: bad count {count}; {USAGE}");
                return ExitCode::from(2);
            };
            let request = streamed(rest.first().map(String::as_str).unwrap_or("events"));
            connections(mode == "hold", Path::new(socket), count, &request);
            ExitCode::SUCCESS
        }
        [mode, socket, log] if mode == "listen" => fake_daemon(Path::new(socket), Path::new(log)),
        [mode, socket] if mode == "session" => session(Path::new(socket)),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn fake_daemon(socket: &Path, log: &Path) -> ExitCode {
    let listener = match std::os::unix::net::UnixListener::bind(socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("attacker: cannot bind {}: {e}", socket.display());
            return ExitCode::from(2);
        }
    };
    // Open to everyone, as a squatter makes it.
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o777)) {
        eprintln!("attacker: cannot chmod {}: {e}", socket.display());
        return ExitCode::from(2);
    }
    println!("listening");
    let _ = std::io::stdout().flush();
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut total = 0;
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut buf) {
            total += n;
        }
        let line = format!("received {total}\n");
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = appended {
            eprintln!("attacker: cannot write {}: {e}", log.display());
        }
    }
    ExitCode::SUCCESS
}

fn swap(args: &[String]) -> ExitCode {
    let pairs: Vec<(PathBuf, PathBuf)> = args
        .chunks(2)
        .map(|p| (PathBuf::from(&p[0]), PathBuf::from(&p[1])))
        .collect();
    println!("racing");
    let _ = std::io::stdout().flush();
    loop {
        for (a, b) in &pairs {
            // Failures (a pair momentarily gone) are part of the race; keep going.
            let _ = renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE);
        }
    }
}

fn session(socket: &Path) -> ExitCode {
    let mut c = match RawConn::connect(socket) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("attacker: cannot connect to {}: {e}", socket.display());
            return ExitCode::from(2);
        }
    };
    if let Err(e) = c.handshake() {
        eprintln!("attacker: {e}");
        return ExitCode::from(2);
    }
    println!("ready");
    for (n, line) in std::io::stdin().lines().map_while(Result::ok).enumerate() {
        if line.trim() != "snapshots" {
            println!("error unknown request {line:?}");
            continue;
        }
        let request = Request::Snapshots(backupd_common::protocol::SnapshotsRequest::default());
        let sent = c.send(&ClientMessage::Request {
            id: (n as u64 + 1).into(),
            request,
        });
        match sent.and_then(|()| c.recv()) {
            Ok(Some(ServerMessage::Reply {
                result: Ok(backupd_common::protocol::Response::Snapshots(list)),
                ..
            })) => println!("snapshots {}", list.len()),
            other => println!("error {other:?}"),
        }
        let _ = std::io::stdout().flush();
    }
    ExitCode::SUCCESS
}

fn streamed(name: &str) -> Request {
    match name.split_once(':') {
        Some(("wait", id)) => Request::Queue(QueueRequest::Wait {
            id: id.parse().unwrap_or(0),
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

fn connections(hold: bool, socket: &Path, count: usize, request: &Request) {
    let (mut ok, mut refused, mut last_refusal) = (0, 0, String::new());
    let mut held = Vec::new();
    for _ in 0..count {
        match open(socket, request) {
            Ok(c) => {
                ok += 1;
                if hold {
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
    let _ = std::io::stdout().flush();
    if hold {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    }
}
