//! Dynamic shell completion: the value completers that `cli` attaches to every argument naming
//! a repository, a watched source, a snapshot, a sync pair or a recovery plan. Each asks the
//! running daemon for the names, so `backupctl restore <TAB>` offers the snapshots there are.
//!
//! # The protocol (clap_complete 4.6, `src/env/`)
//!
//! `lib::run` hands the process to `clap_complete::CompleteEnv` before parsing anything. With
//! `COMPLETE` unset, empty or `0` it does nothing. Otherwise `COMPLETE` names the shell (`bash`,
//! `zsh`, `fish`, `elvish`, `powershell`; an unknown one is an error) and backupctl exits 0
//! after answering:
//!
//! * **registration**: with no `--` among the arguments (`COMPLETE=bash backupctl`) it prints
//!   the shell code that registers the completion of `backupctl`, calling `backupctl` from
//!   PATH at each TAB (not the path it was run by, so a packaged script stays valid).
//! * **a request**: everything after the first `--` is the command line being completed, its
//!   first word the program itself: `COMPLETE=bash backupctl -- backupctl restore ""` asks for
//!   the words that can stand where the empty one is. The candidates go to stdout.
//!   * bash: `_CLAP_COMPLETE_INDEX` is the index of the word being completed in those words
//!     (bash's `COMP_CWORD`; 0 is `backupctl`), `_CLAP_IFS` separates the candidates (the
//!     script sets it to `\v`, vertical tab; a newline when unset), `_CLAP_COMPLETE_COMP_TYPE`
//!     (bash's `COMP_TYPE`, e.g. 9) and `_CLAP_COMPLETE_SPACE` (`true`/`false`) are read but do
//!     not change the answer. Values only, no help text.
//!   * zsh: `_CLAP_COMPLETE_INDEX` as for bash (an index one past the last word means a fresh
//!     empty word) and `_CLAP_IFS` (the script sets a newline); each candidate `value:help`,
//!     `:` in values escaped as `\:`.
//!   * fish: no variables; the word being completed is the last one; one candidate a line,
//!     `value<TAB>help`.
//!
//! # What a completer may do
//!
//! A completer runs on every TAB, inside the shell's prompt. It opens one connection on a
//! current-thread runtime of its own and gives up after [`DEADLINE`]; on any failure (no
//! daemon, socket permission, an untrusted daemon, refusal, the deadline) it offers nothing
//! and prints nothing. It never retries, never prompts and never writes to stderr, and it does
//! not send a request the role granted at the handshake does not allow. The socket is
//! the one the command would use: `--socket` (and `--socket-owner`) typed on the line being
//! completed, else `BACKUPD_SOCKET`, else the default; snapshots are those of the `--repo`,
//! `--source` and `--host` typed on the line.

use crate::client::Client;
use crate::commands::results::short;
use backupd_common::client::ClientError;
use backupd_common::paths::escape_path;
use backupd_common::protocol::{
    Permission, RecoveryRequest, RepoRequest, Request, Response, Role, SnapshotFilter,
    SnapshotInfo, SnapshotsRequest, SourceRequest, SyncRequest,
};
use clap_complete::engine::CompletionCandidate;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The variable that turns a run of backupctl into a completion request, and the program the
/// registration scripts call back: shared with the packaging, which writes those scripts.
pub const ENV_VAR: &str = "COMPLETE";
pub const BIN: &str = "backupctl";

/// The longest one TAB waits for the daemon: connecting, the handshake and the answer.
pub const DEADLINE: Duration = Duration::from_secs(1);

/// Registered repositories, the default one marked.
pub fn repositories(current: &OsStr) -> Vec<CompletionCandidate> {
    let line = Line::of_process();
    let permission = Request::Repo(RepoRequest::List).permission();
    let list = ask(
        &line,
        permission,
        |mut c| async move { c.repo_list().await },
    );
    let list = list.unwrap_or_default();
    let items = list.into_iter().map(|r| {
        let default = if r.is_default { " (default)" } else { "" };
        (r.name, format!("{}{default}", r.path))
    });
    named(items, current)
}

/// Watched sources, with their directories.
pub fn sources(current: &OsStr) -> Vec<CompletionCandidate> {
    let line = Line::of_process();
    let permission = Request::Source(SourceRequest::List).permission();
    let list = ask(&line, permission, |mut c| async move { c.sources().await });
    let list = list.unwrap_or_default();
    let items = list
        .into_iter()
        .map(|s| (s.spec.name, escape_path(&s.spec.path)));
    named(items, current)
}

/// A snapshot where `latest` is accepted too (restore, ls, find, diff, stats). The
/// `SNAPSHOT[:PATH]` arguments complete only their snapshot part.
pub fn snapshots(current: &OsStr) -> Vec<CompletionCandidate> {
    snapshot_candidates(&list_snapshots(current), current, SnapshotForm::Spec)
}

/// A snapshot by id alone (forget, recovery).
pub fn snapshot_ids(current: &OsStr) -> Vec<CompletionCandidate> {
    snapshot_candidates(&list_snapshots(current), current, SnapshotForm::Id)
}

/// The snapshot part of a `SNAPSHOT:PATH` whose path is required (cat): `ID:`, so that the
/// shell leaves the cursor after the colon.
pub fn snapshot_paths(current: &OsStr) -> Vec<CompletionCandidate> {
    snapshot_candidates(&list_snapshots(current), current, SnapshotForm::WithPath)
}

/// Sync pairs, with their directories.
pub fn sync_pairs(current: &OsStr) -> Vec<CompletionCandidate> {
    let line = Line::of_process();
    let permission = Request::Sync(SyncRequest::List).permission();
    let answer = ask(&line, permission, |mut c| async move {
        c.sync(SyncRequest::List).await
    });
    let list = match answer {
        Some(Response::SyncPairs(list)) => list,
        _ => Vec::new(),
    };
    let items = list.into_iter().map(|p| {
        let help = format!(
            "{} -> {}",
            escape_path(&p.spec.src),
            escape_path(&p.spec.dst)
        );
        (p.spec.name, help)
    });
    named(items, current)
}

/// Recovery plans, with their state and path.
pub fn recovery_plans(current: &OsStr) -> Vec<CompletionCandidate> {
    let line = Line::of_process();
    let permission = Request::Recovery(RecoveryRequest::List).permission();
    let list = ask(
        &line,
        permission,
        |mut c| async move { c.recovery_list().await },
    );
    let list = list.unwrap_or_default();
    let items = list.into_iter().map(|p| {
        let help = format!("{} {}", p.state.as_str(), escape_path(&p.path));
        (p.id, help)
    });
    named(items, current)
}

/// The snapshots the line's `--repo`, `--source` and `--host` select; none without asking
/// when the word is already past the snapshot part.
fn list_snapshots(current: &OsStr) -> Vec<SnapshotInfo> {
    if current.to_str().is_none_or(|c| c.contains(':')) {
        return Vec::new();
    }
    let line = Line::of_process();
    let request = SnapshotsRequest {
        repo: line.repo.clone(),
        filter: SnapshotFilter {
            host: line.host.clone(),
            source: line.source.clone(),
            ..SnapshotFilter::default()
        },
    };
    let permission = Request::Snapshots(request.clone()).permission();
    ask(&line, permission, |mut c| async move {
        c.snapshots(request).await
    })
    .unwrap_or_default()
}

/// Runs `request`, which needs `permission`, against the daemon, all of it within
/// [`DEADLINE`]; `None` on any failure.
///
/// A request the role granted at the handshake does not allow is not sent: the daemon would
/// refuse it, and it counts refusals (`security.detect.brute_force_failures`, 5 in 10 minutes
/// by default) towards an alert and a lockout. A viewer pressing TAB must not set that off.
fn ask<T, F, Fut>(line: &Line, permission: Permission, request: F) -> Option<T>
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let socket = line.socket();
    let owner = line.socket_owner();
    let answer = runtime.block_on(async {
        tokio::time::timeout(DEADLINE, async {
            let client = Client::connect(&socket, owner).await?;
            if !may(client.role(), permission) {
                return Ok(None);
            }
            request(client).await.map(Some)
        })
        .await
    });
    // Past the deadline nothing may hold the shell up, not even the runtime's teardown.
    runtime.shutdown_background();
    answer.ok()?.ok()?
}

/// Whether the daemon grants `permission` to a caller it gave `role`. A binding limited to
/// some repositories still lets a request about another one be refused; that is rare enough.
fn may(role: Option<Role>, permission: Permission) -> bool {
    role.is_some_and(|r| r.grants(permission))
}

/// How a snapshot candidate is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SnapshotForm {
    /// An id, or `latest`.
    Spec,
    /// An id.
    Id,
    /// An id or `latest`, followed by `:`.
    WithPath,
}

/// Newest first: `latest` (where accepted), then each snapshot by its short id as
/// `backupctl snapshots` prints it, or by its whole id where the short one is ambiguous or
/// the word typed is already longer. Help: its time and its source or paths.
fn snapshot_candidates(
    list: &[SnapshotInfo],
    current: &OsStr,
    form: SnapshotForm,
) -> Vec<CompletionCandidate> {
    // A word that is not UTF-8, or already in its path part, names no snapshot we can offer.
    let Some(current) = current.to_str().filter(|c| !c.contains(':')) else {
        return Vec::new();
    };
    let suffix = if form == SnapshotForm::WithPath {
        ":"
    } else {
        ""
    };
    let mut out = Vec::new();
    if form != SnapshotForm::Id && "latest".starts_with(current) {
        let help = "the newest snapshot (of those --source, --host, --tag select)";
        out.push(candidate(format!("latest{suffix}"), help.to_owned()));
    }
    let mut shorts: HashMap<&str, usize> = HashMap::new();
    for s in list {
        *shorts.entry(short(&s.id)).or_default() += 1;
    }
    let mut newest_first: Vec<&SnapshotInfo> = list.iter().collect();
    newest_first.sort_by_key(|s| std::cmp::Reverse(s.time_ns));
    for s in newest_first {
        let id_short = short(&s.id);
        let value = if current.len() > id_short.len() || shorts[id_short] > 1 {
            s.id.as_str()
        } else {
            id_short
        };
        if value.starts_with(current) {
            out.push(candidate(format!("{value}{suffix}"), snapshot_help(s)));
        }
    }
    out
}

/// `2026-12-01T20:00:00Z source docs`, or the backed-up paths when no source made it.
fn snapshot_help(s: &SnapshotInfo) -> String {
    match &s.source {
        Some(name) => format!("{} source {name}", s.time),
        None => format!("{} {}", s.time, s.paths.join(" ")),
    }
}

/// The `(value, help)` items whose value starts with the word typed.
fn named(
    items: impl IntoIterator<Item = (String, String)>,
    current: &OsStr,
) -> Vec<CompletionCandidate> {
    let Some(current) = current.to_str() else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter(|(value, _)| value.starts_with(current))
        .map(|(value, help)| candidate(value, help))
        .collect()
}

fn candidate(value: String, help: String) -> CompletionCandidate {
    let c = CompletionCandidate::new(value);
    if help.is_empty() {
        c
    } else {
        c.help(Some(help.into()))
    }
}

/// What the command line being completed says about where to ask and what to list. The
/// words may be unfinished or wrong; only these options are read, each option's last value
/// counting, as clap would take it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Line {
    socket: Option<PathBuf>,
    socket_owner: Option<String>,
    repo: Option<String>,
    source: Option<String>,
    host: Option<String>,
}

impl Line {
    /// The words after the first `--` of this process's arguments: the line the shell sent.
    fn of_process() -> Self {
        let mut args = std::env::args_os().skip_while(|a| a != "--");
        args.next();
        Self::parse(args)
    }

    fn parse(words: impl IntoIterator<Item = OsString>) -> Self {
        let mut line = Self::default();
        let mut words = words.into_iter();
        while let Some(word) = words.next() {
            let Some(word) = word.to_str().map(str::to_owned) else {
                continue;
            };
            let (flag, inline) = match word.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(OsString::from(value))),
                None => (word, None),
            };
            let wanted = ["--socket", "--socket-owner", "--repo", "--source", "--host"];
            if !wanted.contains(&flag.as_str()) {
                continue;
            }
            let value = inline.or_else(|| words.next());
            let Some(value) = value.filter(|v| !v.is_empty()) else {
                continue;
            };
            let text = || value.to_str().map(str::to_owned);
            match flag.as_str() {
                "--socket" => line.socket = Some(PathBuf::from(&value)),
                "--socket-owner" => line.socket_owner = text(),
                "--repo" => line.repo = text(),
                "--source" => line.source = text(),
                _ => line.host = text(),
            }
        }
        line
    }

    fn socket(&self) -> PathBuf {
        resolve_socket(self.socket.as_deref(), std::env::var_os("BACKUPD_SOCKET"))
    }

    /// `--socket-owner` as the command would take it; a name that does not resolve trusts
    /// no one more.
    fn socket_owner(&self) -> Option<u32> {
        let owner = self.socket_owner.as_deref()?;
        backupd_common::client::parse_user(owner).ok()
    }
}

/// The socket as `backupctl` picks it: `--socket`, else `BACKUPD_SOCKET` (`env`), else the
/// default for this user.
fn resolve_socket(typed: Option<&Path>, env: Option<OsString>) -> PathBuf {
    typed
        .map(Path::to_owned)
        .or_else(|| env.filter(|e| !e.is_empty()).map(PathBuf::from))
        .unwrap_or_else(backupd_common::paths::client_socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use backupd_common::protocol::SnapshotStatsView;
    use std::time::Instant;

    fn values(candidates: &[CompletionCandidate]) -> Vec<String> {
        candidates
            .iter()
            .map(|c| c.get_value().to_string_lossy().into_owned())
            .collect()
    }

    fn helps(candidates: &[CompletionCandidate]) -> Vec<String> {
        candidates
            .iter()
            .map(|c| c.get_help().map(|h| h.to_string()).unwrap_or_default())
            .collect()
    }

    fn snapshot(id: &str, time_ns: i64, source: Option<&str>) -> SnapshotInfo {
        SnapshotInfo {
            id: id.to_owned(),
            time: format!("t{time_ns}"),
            time_ns,
            host: "h".into(),
            username: "u".into(),
            paths: vec!["/srv/a".into(), "/srv/b".into()],
            tags: Vec::new(),
            parent: None,
            stats: SnapshotStatsView::default(),
            skipped: 0,
            source: source.map(str::to_owned),
            owner_uid: None,
        }
    }

    fn words(line: &str) -> Vec<OsString> {
        line.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn names_are_filtered_by_the_prefix_typed_and_keep_their_help() {
        let items = || {
            [
                ("default", "/var/a (default)"),
                ("vault", "/b"),
                ("vaults", ""),
            ]
            .map(|(v, h)| (v.to_owned(), h.to_owned()))
        };
        let all = named(items(), OsStr::new(""));
        assert_eq!(values(&all), ["default", "vault", "vaults"]);
        assert_eq!(helps(&all), ["/var/a (default)", "/b", ""]);
        assert_eq!(
            values(&named(items(), OsStr::new("va"))),
            ["vault", "vaults"]
        );
        assert!(named(items(), OsStr::new("x")).is_empty());
    }

    #[test]
    fn snapshots_complete_newest_first_by_short_id_with_latest_where_accepted() {
        let list = [
            snapshot("aaaa1111ffff", 1, None),
            snapshot("bbbb2222ffff", 3, Some("docs")),
            snapshot("aaaa2222ffff", 2, None),
        ];
        let spec = snapshot_candidates(&list, OsStr::new(""), SnapshotForm::Spec);
        assert_eq!(
            values(&spec),
            ["latest", "bbbb2222", "aaaa2222", "aaaa1111"]
        );
        assert_eq!(helps(&spec)[1], "t3 source docs");
        assert_eq!(helps(&spec)[2], "t2 /srv/a /srv/b");

        let ids = snapshot_candidates(&list, OsStr::new("aaaa"), SnapshotForm::Id);
        assert_eq!(values(&ids), ["aaaa2222", "aaaa1111"]);
        let la = snapshot_candidates(&list, OsStr::new("la"), SnapshotForm::Id);
        assert!(la.is_empty(), "forget takes no `latest`");

        let cat = snapshot_candidates(&list, OsStr::new("b"), SnapshotForm::WithPath);
        assert_eq!(values(&cat), ["bbbb2222:"]);
        let past = snapshot_candidates(&list, OsStr::new("bbbb2222:/e"), SnapshotForm::Spec);
        assert!(past.is_empty(), "the path part is not completed");
    }

    #[test]
    fn a_longer_prefix_or_an_ambiguous_short_id_completes_the_whole_id() {
        let list = [
            snapshot("cccc3333aaaa", 1, None),
            snapshot("cccc3333bbbb", 2, None),
            snapshot("dddd4444aaaa", 3, None),
        ];
        let all = snapshot_candidates(&list, OsStr::new("c"), SnapshotForm::Id);
        assert_eq!(values(&all), ["cccc3333bbbb", "cccc3333aaaa"]);
        let long = snapshot_candidates(&list, OsStr::new("dddd4444a"), SnapshotForm::Id);
        assert_eq!(values(&long), ["dddd4444aaaa"]);
    }

    #[test]
    fn the_line_gives_socket_owner_repo_source_and_host_last_value_winning() {
        let line = Line::parse(words(
            "backupctl --socket /s1 restore --repo=a --source docs --repo b --host h \
             --socket-owner bob --socket=/s2 ",
        ));
        assert_eq!(
            line,
            Line {
                socket: Some("/s2".into()),
                socket_owner: Some("bob".into()),
                repo: Some("b".into()),
                source: Some("docs".into()),
                host: Some("h".into()),
            }
        );
        // The option whose value is being typed, or not typed yet, gives nothing.
        assert_eq!(
            Line::parse(words("backupctl restore --repo")),
            Line::default()
        );
        assert_eq!(
            Line::parse(words("backupctl restore --repo ")),
            Line::default()
        );
    }

    #[test]
    fn the_socket_is_the_typed_one_else_backupd_socket_else_the_default() {
        let env = || Some(OsString::from("/env.sock"));
        assert_eq!(
            resolve_socket(Some(Path::new("/typed.sock")), env()),
            PathBuf::from("/typed.sock")
        );
        assert_eq!(resolve_socket(None, env()), PathBuf::from("/env.sock"));
        assert_eq!(
            resolve_socket(None, Some(OsString::new())),
            backupd_common::paths::client_socket()
        );
    }

    #[test]
    fn only_what_the_role_may_list_is_asked_for() {
        let snapshots = Request::Snapshots(SnapshotsRequest::default()).permission();
        let repos = Request::Repo(RepoRequest::List).permission();
        assert!(may(Some(Role::User), snapshots));
        assert!(!may(Some(Role::Viewer), snapshots));
        assert!(may(Some(Role::Viewer), repos));
        assert!(!may(None, repos));
    }

    #[test]
    fn no_daemon_means_no_candidates_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let line = Line {
            socket: Some(dir.path().join("nothing.sock")),
            ..Line::default()
        };
        let started = Instant::now();
        let answer = ask(&line, Permission::RepoRead, |mut c| async move {
            c.repo_list().await
        });
        assert!(answer.is_none());
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_daemon_that_never_answers_costs_at_most_the_deadline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("silent.sock");
        // Bound and listening but never accepting: the connect succeeds (the backlog takes
        // it), the handshake is never answered.
        let _listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let line = Line {
            socket: Some(path),
            ..Line::default()
        };
        let started = Instant::now();
        let answer = ask(&line, Permission::RepoRead, |mut c| async move {
            c.repo_list().await
        });
        assert!(answer.is_none());
        let took = started.elapsed();
        assert!(took < DEADLINE + Duration::from_secs(4), "{took:?}");
    }
}
