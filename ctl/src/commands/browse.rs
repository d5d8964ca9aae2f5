//! `backupctl ls`, `find`, `diff`, `cat`: browsing snapshots without restoring them. Human
//! output names files by the one escape rule (`json::path`), so a hostile name cannot move the
//! terminal's cursor; `cat` writes the file's bytes to stdout as they arrive, piece by piece.

use super::results::short;
use super::{Failure, Paths};
use crate::cli::{CatArgs, DiffArgs, FindArgs, LsArgs};
use crate::client::Client;
use crate::exit::ExitCode;
use crate::json::browse::{members, name_of, DiffView, FoundView, ListingView};
use crate::json::{path, time};
use crate::output::Output;
use crate::progress::bytes;
use backupd_common::protocol::{
    CatRequest, DiffRequest, EntryInfo, EntryKind, FindRequest, Found, LsRequest,
};
use comfy_table::{presets, CellAlignment, Table};
use std::io::Write;
use std::ops::ControlFlow;
use std::time::{SystemTime, UNIX_EPOCH};

/// Said for `cat --json`: the output is the file itself.
pub const CAT_NO_JSON: &str = "cat has no --json output: it writes the file's bytes to stdout; \
                               use `backupctl --json ls SNAPSHOT:PATH` for its metadata";

pub async fn ls(
    client: &mut Client,
    a: &LsArgs,
    out: &Output,
    paths: Paths,
) -> Result<ExitCode, Failure> {
    let (snapshot, at) = paths.snapshot_path(&a.snapshot)?;
    let listing = client
        .ls(LsRequest {
            repo: a.repo.clone(),
            snapshot,
            filter: a.filter.to_filter(None),
            path: at,
            recursive: a.recursive,
            limit: a.limit,
        })
        .await?;
    out.value(&ListingView::from(&listing), || {
        let base = listing.path.as_slice();
        // Recursive listings name entries below the directory; plain ones by name.
        let label = |e: &EntryInfo| -> String {
            let shown = if a.recursive {
                e.path
                    .strip_prefix(base)
                    .map(|p| p.strip_prefix(b"/").unwrap_or(p))
                    .filter(|p| !p.is_empty())
                    .unwrap_or(&e.path)
            } else {
                name_of(&e.path)
            };
            let mut s = path(shown);
            if e.kind == EntryKind::Dir {
                s.push('/');
            }
            s
        };
        let mut text = if a.long {
            long_table(&listing.entries, label)
        } else {
            listing
                .entries
                .iter()
                .map(label)
                .collect::<Vec<_>>()
                .join("\n")
        };
        for note in notes(
            listing.truncated,
            listing.unsafe_names,
            "entries",
            "--limit",
        ) {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&note);
        }
        text
    });
    Ok(ExitCode::Ok)
}

/// What a reply left out, as lines for humans.
fn notes(truncated: bool, unsafe_names: u64, what: &str, raise: &str) -> Vec<String> {
    let mut out = Vec::new();
    if truncated {
        out.push(format!(
            "(more {what} than shown: the list was cut; narrow it or raise {raise})"
        ));
    }
    if unsafe_names > 0 {
        out.push(format!(
            "({unsafe_names} entries with names that cannot be file names were left out: the \
             repository holds damaged or hostile trees; run `backupctl repo check`)"
        ));
    }
    out
}

/// `drwxr-xr-x` from a kind and permission bits.
pub fn mode_string(kind: EntryKind, mode: u32) -> String {
    let t = match kind {
        EntryKind::File => '-',
        EntryKind::Dir => 'd',
        EntryKind::Symlink => 'l',
        EntryKind::Fifo => 'p',
        EntryKind::CharDevice => 'c',
        EntryKind::BlockDevice => 'b',
        EntryKind::Socket => 's',
    };
    let mut s = String::with_capacity(10);
    s.push(t);
    for (shift, special, set_char) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let x = bits & 1 != 0;
        s.push(match (mode & special != 0, x) {
            (true, true) => set_char,
            (true, false) => set_char.to_ascii_uppercase(),
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

fn long_table(entries: &[EntryInfo], label: impl Fn(&EntryInfo) -> String) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    for e in entries {
        let mut name = label(e);
        if let Some(target) = &e.target {
            name.push_str(" -> ");
            name.push_str(&path(target));
        }
        let size = match e.kind {
            EntryKind::CharDevice | EntryKind::BlockDevice => {
                format!("{}, {}", e.rdev >> 8 & 0xfff, e.rdev & 0xff)
            }
            _ => e.size.to_string(),
        };
        t.add_row([
            mode_string(e.kind, e.mode),
            e.user.clone().unwrap_or_else(|| e.uid.to_string()),
            e.group.clone().unwrap_or_else(|| e.gid.to_string()),
            size,
            time(e.mtime_ns),
            name,
        ]);
    }
    if let Some(c) = t.column_mut(3) {
        c.set_cell_alignment(CellAlignment::Right);
    }
    // The preset pads every line with one leading space.
    t.lines()
        .map(|l| l.trim().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `--since`/`--until`: RFC 3339, Unix seconds, or a duration meaning that long ago.
fn parse_when(text: &str, flag: &str) -> Result<i64, Failure> {
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs.saturating_mul(1_000_000_000));
    }
    let at = match humantime::parse_duration(text) {
        Ok(ago) => SystemTime::now().checked_sub(ago).unwrap_or(UNIX_EPOCH),
        Err(_) => humantime::parse_rfc3339_weak(text).map_err(|e| {
            Failure::Usage(format!(
                "{flag} {text:?}: {e}; use RFC 3339 (2026-05-01T12:00:00Z), Unix seconds or a \
                 duration ago (7d)"
            ))
        })?,
    };
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    Ok(i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX))
}

pub async fn find(
    client: &mut Client,
    a: &FindArgs,
    out: &Output,
    paths: Paths,
) -> Result<ExitCode, Failure> {
    let request = FindRequest {
        repo: a.repo.clone(),
        pattern: a.pattern.clone(),
        snapshots: a.snapshot.clone(),
        since_ns: a
            .since
            .as_deref()
            .map(|t| parse_when(t, "--since"))
            .transpose()?,
        until_ns: a
            .until
            .as_deref()
            .map(|t| parse_when(t, "--until"))
            .transpose()?,
        filter: a.filter.to_filter(None),
        path: a.path.as_deref().map(|p| paths.abs(p)).transpose()?,
        limit: a.limit,
    };
    let found = client.find(request).await?;
    out.value(&FoundView::new(&a.pattern, &found), || found_text(&found));
    Ok(ExitCode::Ok)
}

/// The snapshots a version is in: short ids, runs of consecutive ones as `first..last`.
fn held_by(found: &Found, ranges: &[(u32, u32)]) -> String {
    let id = |i: u32| {
        found
            .snapshots
            .get(i as usize)
            .map_or("?", |s| short(&s.id))
            .to_owned()
    };
    ranges
        .iter()
        .map(|(a, b)| match b - a {
            0 => id(*a),
            1 => format!("{}, {}", id(*a), id(*b)),
            _ => format!("{}..{}", id(*a), id(*b)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn found_text(found: &Found) -> String {
    let mut lines = Vec::new();
    for m in &found.matches {
        lines.push(path(&m.path));
        for v in &m.versions {
            let what = match (v.kind, &v.content, &v.target) {
                (EntryKind::File, Some(c), _) => format!("{}, content {c}", bytes(v.size)),
                (EntryKind::Symlink, _, Some(t)) => format!("symlink -> {}", path(t)),
                (kind, _, _) => kind.as_str().to_owned(),
            };
            let n = members(found, v).len();
            lines.push(format!(
                "  {what}, modified {}: {} ({})",
                time(v.mtime_ns),
                if n == 1 { "1 snapshot" } else { "snapshots" },
                held_by(found, &v.snapshots),
            ));
        }
    }
    let count = found.matches.len();
    lines.push(format!(
        "{} in {} searched ({} tree {} read)",
        if count == 1 {
            "1 path".to_owned()
        } else {
            format!("{count} paths")
        },
        crate::output::count(found.snapshots.len() as u64, "snapshot"),
        found.trees_read,
        if found.trees_read == 1 {
            "blob"
        } else {
            "blobs"
        },
    ));
    lines.extend(notes(
        found.truncated,
        found.unsafe_names,
        "matches",
        "--limit",
    ));
    lines.join("\n")
}

pub async fn diff(
    client: &mut Client,
    a: &DiffArgs,
    out: &Output,
    paths: Paths,
) -> Result<ExitCode, Failure> {
    let request = DiffRequest {
        repo: a.repo.clone(),
        from: a.from.clone(),
        to: a.to.clone(),
        filter: a.filter.to_filter(None),
        path: a.path.as_deref().map(|p| paths.abs(p)).transpose()?,
        limit: a.limit,
    };
    let d = client.diff(request).await?;
    out.value(&DiffView::from(&d), || {
        let mut t = Table::new();
        t.load_preset(presets::NOTHING);
        for c in &d.changes {
            let mut name = path(&c.path);
            if c.kind == EntryKind::Dir {
                name.push('/');
            }
            let detail = match (c.size_before, c.size_after, c.fields.is_empty()) {
                (Some(x), Some(y), _) if x != y => {
                    format!("{} ({} -> {})", fields(&c.fields), bytes(x), bytes(y))
                }
                (_, _, false) => fields(&c.fields),
                _ => String::new(),
            };
            t.add_row([c.change.as_str().to_owned(), name, detail]);
        }
        let mut text: Vec<String> = t.lines().map(|l| l.trim().to_owned()).collect();
        text.push(format!(
            "{} -> {}: {} added, {} removed, {} modified, {} metadata only",
            short(&d.from),
            short(&d.to),
            d.added,
            d.removed,
            d.modified,
            d.metadata
        ));
        text.extend(notes(d.truncated, d.unsafe_names, "changes", "--limit"));
        text.join("\n")
    });
    Ok(ExitCode::Ok)
}

fn fields(f: &[backupd_common::protocol::DiffField]) -> String {
    f.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
}

pub async fn cat(client: &mut Client, a: &CatArgs, paths: Paths) -> Result<ExitCode, Failure> {
    let (snapshot, at) = paths.snapshot_path(&a.snapshot)?;
    let Some(at) = at else {
        return Err(Failure::Usage(format!(
            "{:?}: name the file as SNAPSHOT:PATH (e.g. latest:/etc/hosts)",
            a.snapshot
        )));
    };
    let request = CatRequest {
        repo: a.repo.clone(),
        snapshot,
        filter: a.filter.to_filter(None),
        path: at,
    };
    let mut stdout = std::io::stdout().lock();
    let mut written = 0u64;
    let mut failed: Option<std::io::Error> = None;
    let done = client
        .cat(request, |piece| match stdout.write_all(&piece) {
            Ok(()) => {
                written += piece.len() as u64;
                ControlFlow::Continue(())
            }
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        })
        .await?;
    let flushed = stdout.flush();
    match (done, failed.or(flushed.err())) {
        // The reader went away (`| head`): as cat does, stop quietly.
        (_, Some(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::Ok),
        (_, Some(e)) => Err(Failure::Local(format!("cannot write to stdout: {e}"))),
        (Some(r), None) if r.bytes != written => Err(Failure::Local(format!(
            "the daemon announced {} bytes of {} but {written} arrived",
            r.bytes,
            path(&r.path)
        ))),
        (Some(_), None) => Ok(ExitCode::Ok),
        (None, None) => Err(Failure::Local("the content stream stopped early".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::browse::octal;

    #[test]
    fn modes_read_like_ls() {
        assert_eq!(mode_string(EntryKind::File, 0o644), "-rw-r--r--");
        assert_eq!(mode_string(EntryKind::Dir, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(EntryKind::File, 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(EntryKind::File, 0o2644), "-rw-r-Sr--");
        assert_eq!(octal(0o100644), "0644");
    }

    #[test]
    fn times_parse_as_dates_seconds_or_durations_ago() {
        assert_eq!(parse_when("10", "--since").ok(), Some(10_000_000_000));
        assert!(parse_when("2026-05-01T12:00:00Z", "--since").is_ok());
        let ago = parse_when("1h", "--since").expect("duration");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos() as i64;
        assert!((now - ago - 3_600_000_000_000).abs() < 60_000_000_000);
        assert!(parse_when("yesterday-ish", "--since").is_err());
    }
}
