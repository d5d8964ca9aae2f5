//! A local attacker for the security tests: drops to an unprivileged uid, then races the
//! daemon by exchanging directory entries in a loop until it is killed.
//!
//! `attacker UID swap A B [A B]...`: exchanges each pair with `renameat2(RENAME_EXCHANGE)`,
//! round and round.

use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [uid, mode, rest @ ..] = args.as_slice() else {
        eprintln!("usage: attacker UID swap A B [A B]...");
        return ExitCode::from(2);
    };
    let Ok(uid) = uid.parse::<u32>() else {
        eprintln!("attacker: bad uid {uid}");
        return ExitCode::from(2);
    };
    // Group first: after setuid the process may no longer change it.
    if nix::unistd::setgroups(&[]).is_err()
        || nix::unistd::setgid(uid.into()).is_err()
        || nix::unistd::setuid(uid.into()).is_err()
    {
        eprintln!("attacker: cannot drop to uid {uid}");
        return ExitCode::from(2);
    }
    if mode != "swap" || rest.is_empty() || rest.len() % 2 != 0 {
        eprintln!("attacker: unknown mode {mode} or odd pair list");
        return ExitCode::from(2);
    }
    let pairs: Vec<(PathBuf, PathBuf)> = rest
        .chunks(2)
        .map(|p| (PathBuf::from(&p[0]), PathBuf::from(&p[1])))
        .collect();
    println!("racing");
    loop {
        for (a, b) in &pairs {
            // Failures (a pair momentarily gone) are part of the race; keep going.
            let _ = renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE);
        }
    }
}
