//! Requests and replies of the repository groups: `repo`, `backup`, `restore`, `snapshots`,
//! `forget`. Paths travel as raw bytes (Linux paths need not be UTF-8).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A secret passed to the daemon (a repository passphrase). Never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret(pub Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RepoRequest {
    /// Create a repository -> `Response::Repo`. `password: None` generates a random key.
    /// `path` is the location: an absolute directory, or `s3://BUCKET/PREFIX[?options]`.
    /// `credentials` (an AWS credentials file's text, S3 only) are stored by the daemon.
    Init {
        name: String,
        path: Vec<u8>,
        password: Option<Secret>,
        credentials: Option<Secret>,
    },
    /// Register an existing repository (new machine, lost state) -> `Response::Repo`. A wrong
    /// password is refused and nothing is written. `path` and `credentials` as for `Init`.
    Add {
        name: String,
        path: Vec<u8>,
        password: Secret,
        credentials: Option<Secret>,
    },
    /// -> `Response::Repos`.
    List,
    /// The stored passphrase, to back it up -> `Response::KeyExport`.
    KeyExport { name: String },
    /// Unregister a repository and drop its snapshot catalog; the repository's files and the
    /// daemon's key file are left as they are -> `Response::RepoRemoved`. Refused (`Conflict`)
    /// while queued or running jobs or watched sources use it.
    Remove { name: String },
    /// Format, chunker, compression, counts and sizes of one repository (`None`: the default)
    /// -> `Response::RepoDetails`.
    Info { name: Option<String> },
    /// Add a key file opening the repository with another passphrase -> `Response::KeyChanged`.
    KeyAdd {
        name: Option<String>,
        password: Secret,
    },
    /// Replace the passphrase the daemon uses: a key file for the new one is added, the daemon's
    /// stored passphrase replaced atomically, then the key files the old one opened are removed
    /// -> `Response::KeyChanged`.
    KeyPasswd {
        name: Option<String>,
        password: Secret,
    },
    /// Sizes and counts of snapshots or of the stored data -> `Response::Stats`.
    Stats(StatsRequest),
    /// Add a data-key version and make it current; every key file is rewritten with it
    /// -> `Response::KeyRotated`. Not streamed.
    KeyRotate { name: Option<String> },
    /// Data-key versions (created, packs each still seals, current, retired) and key files
    /// -> `Response::KeyList`. Not streamed.
    KeyList { name: Option<String> },
    /// Remove the key file whose name starts with `id` -> `Response::KeyRemoved`. Refused
    /// (`Conflict`) for the last one and for the only one the daemon's passphrase opens.
    KeyRemove { name: Option<String>, id: String },
    /// `repo init --replica-of`: create a replica of a registered repository
    /// -> `Response::Repo`.
    InitReplica(super::InitReplicaRequest),
    /// Store a replication (replacing the one into the same replica) -> `Response::Replication`.
    ReplicateAdd(super::ReplicationSpec),
    /// Every replication with its lag -> `Response::Replications`.
    ReplicateList,
    /// Remove the replication into `to` (the replica's data stays) -> `Response::Replication`.
    ReplicateRemove { to: String },
}

/// Which snapshots a command considers. Every field given must match (every tag in `tags`).
/// `snapshots` lists the matching ones; `latest` in a snapshot spec means the newest matching
/// one. An explicit snapshot id is not filtered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFilter {
    pub host: Option<String>,
    pub tags: Vec<String>,
    /// The watched source whose directory the snapshot holds.
    pub source: Option<String>,
    /// An absolute path the snapshot holds: one of its backed-up paths is this path or a
    /// directory above it.
    pub path: Option<Vec<u8>>,
}

impl SnapshotFilter {
    /// The filters as a user reads them in a message, e.g. `host h, tags a+b`; `no filters`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = &self.path {
            parts.push(format!("path {}", crate::paths::escape_path(p)));
        }
        if let Some(h) = &self.host {
            parts.push(format!("host {h}"));
        }
        match self.tags.as_slice() {
            [] => {}
            [t] => parts.push(format!("tag {t}")),
            many => parts.push(format!("tags {}", many.join("+"))),
        }
        if let Some(s) = &self.source {
            parts.push(format!("source {s}"));
        }
        if parts.is_empty() {
            "no filters".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatsMode {
    /// What a restore would write: files, directories, bytes of file contents.
    #[default]
    RestoreSize,
    /// What is stored: packs and blobs, their bytes, compression and deduplication.
    Raw,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsRequest {
    pub repo: Option<String>,
    /// Snapshot specs (`latest`, ids, prefixes); empty: every snapshot.
    pub snapshots: Vec<String>,
    /// Narrows `latest` (and the default "every snapshot").
    pub filter: SnapshotFilter,
    pub mode: StatsMode,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsResult {
    pub mode: StatsMode,
    /// The snapshots counted, by full id.
    pub snapshots: Vec<String>,
    /// Restore size: every snapshot's files and bytes added up.
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub bytes: u64,
    /// Raw: the distinct blobs these snapshots need (all indexed blobs without snapshots).
    pub blobs: u64,
    pub tree_blobs: u64,
    pub data_blobs: u64,
    /// Raw: those blobs' plaintext bytes.
    pub raw_bytes: u64,
    /// Raw: those blobs' bytes as stored (compressed, encrypted).
    pub stored_bytes: u64,
    /// Raw, whole repository only: packs and their bytes on storage.
    pub packs: Option<u64>,
    pub pack_bytes: Option<u64>,
    /// Raw: file bytes of the snapshots / plaintext bytes of their data blobs.
    pub dedup_ratio: Option<f64>,
    /// Raw: plaintext bytes / stored bytes.
    pub compression_ratio: Option<f64>,
}

/// `repo info`: what a repository is and holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepoDetails {
    pub repo: RepoInfo,
    pub created: String,
    pub chunk_min: u32,
    pub chunk_avg: u32,
    pub chunk_max: u32,
    /// e.g. `zstd level 1`.
    pub compression: String,
    pub snapshots: u64,
    pub packs: u64,
    pub blobs: u64,
    pub index_files: u64,
    pub key_files: u64,
    /// Bytes of the pack files.
    pub stored_bytes: u64,
    /// Plaintext bytes of every blob.
    pub original_bytes: u64,
    /// File bytes of every snapshot added up / plaintext bytes of the data blobs.
    pub dedup_ratio: Option<f64>,
    /// Plaintext bytes / pack bytes.
    pub compression_ratio: Option<f64>,
}

/// What `repo key add` / `repo key passwd` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyChange {
    pub name: String,
    /// The key file written into the repository (`keys/<name>`).
    pub added: String,
    /// Key files removed from the repository (the old passphrase's, for `passwd`).
    pub removed: Vec<String>,
    /// How many key files the repository has now.
    pub key_files: u64,
    /// The daemon's stored passphrase file, replaced by `passwd`.
    pub daemon_key_file: Option<String>,
}

/// What a `repo key reencrypt` job did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReencryptResult {
    /// The current data-key version, which sealed everything written.
    pub current: u32,
    /// Objects sealed by versions below this one (other than the current) were sealed again.
    pub below: u32,
    pub packs_rewritten: u64,
    pub packs_written: u64,
    pub blobs: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub index_files_rewritten: u64,
    pub snapshots_rewritten: u64,
    /// Snapshots whose id changed (format 1 only: its snapshots are named by their sealed
    /// bytes): old id, new id.
    pub snapshots_renamed: Vec<(String, String)>,
    /// Superseded index files and replaced packs an interrupted run had left.
    pub leftovers_removed: u64,
    /// Versions whose key material was destroyed by this job.
    pub retired: Vec<u32>,
}

/// What `repo key rotate` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotation {
    pub name: String,
    /// The version that was current before.
    pub previous: u32,
    /// The new current version.
    pub version: u32,
    /// The key files' new generation.
    pub generation: u64,
    /// Key files written with the new version.
    pub written: Vec<String>,
    /// Key files they replaced.
    pub removed: Vec<String>,
    /// Version 1 key files of other passphrases, which cannot be rewritten without them.
    pub kept_v1: Vec<String>,
}

/// One data-key version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVersionInfo {
    pub version: u32,
    /// RFC 3339.
    pub created: String,
    pub current: bool,
    /// Its key material was destroyed.
    pub retired: bool,
    /// Packs whose header this version seals.
    pub packs: u64,
}

/// One key file (one passphrase) of a repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFileInfo {
    /// The file's name in `keys/`; a unique prefix is enough for `repo key remove`.
    pub name: String,
    /// Key file format version (1 or 2).
    pub version: u32,
    /// RFC 3339, when the passphrase was added.
    pub created: String,
    pub host: String,
    /// The generation of the key ring it holds (`None` for a version 1 file).
    pub generation: Option<u64>,
}

/// `repo key list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyListing {
    pub name: String,
    pub current: u32,
    pub generation: u64,
    pub versions: Vec<KeyVersionInfo>,
    pub key_files: Vec<KeyFileInfo>,
    /// Packs whose header could not be read, so that they are counted under no version.
    pub unreadable_packs: Vec<String>,
}

/// What `repo key remove` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRemoval {
    pub name: String,
    /// The key file and any stale copy of it (the same passphrase, an older generation).
    pub removed: Vec<String>,
    /// How many key files the repository has now.
    pub key_files: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepoInfo {
    pub name: String,
    pub path: String,
    pub id: String,
    pub format_version: u32,
    pub snapshots: Option<u64>,
    /// Where the daemon keeps this repository's passphrase.
    pub key_file: String,
    pub is_default: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyExport {
    pub name: String,
    pub path: String,
    /// The passphrase that opens the repository, as stored: text when it is UTF-8, else hex.
    pub password: String,
    /// `utf8` or `hex` (a binary passphrase from a file): how to turn `password` back into bytes.
    pub encoding: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackupRequest {
    pub repo: Option<String>,
    pub paths: Vec<Vec<u8>>,
    pub excludes: Vec<String>,
    pub exclude_files: Vec<Vec<u8>>,
    pub exclude_caches: bool,
    pub one_file_system: bool,
    pub tags: Vec<String>,
    pub host: Option<String>,
    /// Snapshot time in ns since the epoch (imports, tests).
    pub time_ns: Option<i64>,
    /// Read every file, ignoring the parent snapshot.
    pub force: bool,
    /// Only these paths changed since the parent (continuous backup): the snapshot is the
    /// parent's tree with them re-examined, and nothing else is walked.
    #[serde(default)]
    pub changes: Option<Vec<PathChange>>,
    /// Parent snapshot id (hex); `None`: the latest snapshot of the same host and paths.
    #[serde(default)]
    pub parent: Option<String>,
    /// The watched source this backup is for.
    #[serde(default)]
    pub source: Option<String>,
    /// Walk and chunk as a backup would, write nothing: answered by
    /// `Response::BackupDryRun`.
    #[serde(default)]
    pub dry_run: bool,
}

/// A path that changed, for an incremental backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathChange {
    pub path: Vec<u8>,
    /// Walk it completely (a directory created or moved in); else only re-examine the entry.
    pub tree: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupResult {
    pub snapshot: String,
    pub parent: Option<String>,
    pub stats: SnapshotStatsView,
    /// Directories listed; an incremental backup lists none it did not need to.
    #[serde(default)]
    pub dirs_scanned: u64,
    /// Built from the parent snapshot and the changed paths alone.
    #[serde(default)]
    pub incremental: bool,
    /// Unreadable paths and why; non-empty means the backup is partial.
    pub skipped: Vec<(String, String)>,
    /// The tree, paths, tags and host equal the parent's: no snapshot was written and
    /// `snapshot` names the parent, which is kept.
    #[serde(default)]
    pub unchanged: bool,
}

/// What a backup would do (`backup --dry-run`); nothing was written to the repository.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupDryRunResult {
    /// The snapshot an incremental backup would compare with.
    pub parent: Option<String>,
    /// What the snapshot would hold.
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub bytes_total: u64,
    /// Files (and their bytes) that would be read: new or changed since the parent.
    pub files_read: u64,
    pub bytes_read: u64,
    /// Plaintext bytes of chunks (and trees) the repository does not have yet.
    pub bytes_new: u64,
    /// Those compressed and encrypted: about what the backup would store.
    pub bytes_new_stored: u64,
    pub blobs_new: u64,
    /// Unreadable paths and why.
    pub skipped: Vec<(String, String)>,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStatsView {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub files_read: u64,
    pub bytes_total: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    pub bytes_stored: u64,
    pub skipped: u64,
    pub changed_during_read: u64,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RestoreRequest {
    pub repo: Option<String>,
    /// `latest`, an id or a unique prefix.
    pub snapshot: String,
    /// Absolute path inside the snapshot whose contents go into `target`.
    pub subpath: Option<Vec<u8>>,
    /// Where to restore; `None`: `<state_dir>/restore/<snapshot short id>`, which the daemon
    /// can always write (also under the systemd unit).
    pub target: Option<Vec<u8>>,
    pub includes: Vec<String>,
    pub excludes: Vec<String>,
    pub verify: bool,
    /// Do not restore owners, even as root.
    #[serde(default)]
    pub no_owner: bool,
    /// Drop setuid/setgid bits; `None`: drop them unless restoring to the original location.
    #[serde(default)]
    pub strip_setid: Option<bool>,
    /// What to do with a file that already exists at the target.
    #[serde(default)]
    pub overwrite: Overwrite,
    /// Narrows `latest` (its `path` is ignored: `subpath`, or the whole snapshot, is what
    /// `latest` must hold).
    #[serde(default)]
    pub filter: SnapshotFilter,
}

/// What a restore does with a file that already exists where it restores one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overwrite {
    /// Replace it.
    Always,
    /// Leave it when its size, mtime and content equal the snapshot's; replace it otherwise.
    #[default]
    IfChanged,
    /// Leave it as it is.
    Never,
}

impl Overwrite {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::IfChanged => "if-changed",
            Self::Never => "never",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreResult {
    pub snapshot: String,
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub bytes: u64,
    /// Paths that could not be restored and why; non-empty means partial.
    pub failed: Vec<(String, String)>,
    pub warnings: Vec<(String, String)>,
    /// The directory restored into (the daemon's default when the request named none).
    pub target: String,
    /// Existing files replaced by the snapshot's (counted in `files` too).
    pub replaced: u64,
    /// Existing files left alone because they equal the snapshot's (`if-changed`).
    pub unchanged: u64,
    /// Existing files left alone although they differ or were not compared (`never`).
    pub kept: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotsRequest {
    pub repo: Option<String>,
    pub filter: SnapshotFilter,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub id: String,
    pub time: String,
    pub time_ns: i64,
    pub host: String,
    pub username: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub parent: Option<String>,
    pub stats: SnapshotStatsView,
    pub skipped: u64,
    /// The watched source whose directory the snapshot holds, when the daemon knows one.
    #[serde(default)]
    pub source: Option<String>,
    /// The uid the snapshot was made for (a user's own backup); `None`: made with the daemon's
    /// rights. A user lists only their own.
    #[serde(default)]
    pub owner_uid: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ForgetRequest {
    pub repo: Option<String>,
    pub keep_last: u32,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub keep_yearly: u32,
    pub keep_within: Option<Duration>,
    pub prune: bool,
    pub dry_run: bool,
    /// Snapshots to remove by id or unique prefix, whatever the rules say; matched against
    /// file names, so an unreadable snapshot file can be removed too. (Default: none, for job
    /// records written before it existed.)
    #[serde(default)]
    pub snapshots: Vec<String>,
    /// Apply the rules only to snapshots of exactly these paths made with the daemon's own
    /// rights (a source's), and keep the newest of each host whatever the rules say. Empty:
    /// every snapshot, grouped by host and paths.
    #[serde(default)]
    pub paths: Vec<Vec<u8>>,
    /// The source whose retention this is (for the history and logs).
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgetDecision {
    pub snapshot: String,
    pub time: String,
    pub host: String,
    pub keep: bool,
    pub reasons: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgetResult {
    pub dry_run: bool,
    pub decisions: Vec<ForgetDecision>,
    pub removed: u64,
    pub prune: Option<PruneSummary>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneSummary {
    pub packs_deleted: u64,
    pub packs_repacked: u64,
    pub packs_written: u64,
    pub blobs_removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Packs no index names that prune kept: younger than the safety window.
    #[serde(default)]
    pub unindexed_kept: u64,
    /// When prune will remove them (RFC 3339), if no index names them by then.
    #[serde(default)]
    pub unindexed_kept_until: Option<String>,
    /// What prune kept and why, as sentences.
    #[serde(default)]
    pub notes: Vec<String>,
    /// Index files before and after: prune rewrites the whole index into few files.
    #[serde(default)]
    pub index_files_before: u64,
    #[serde(default)]
    pub index_files_after: u64,
}

/// What a `repo compact` job did: the index merged into few files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactSummary {
    pub index_files_before: u64,
    pub index_files_after: u64,
    /// Packs and blob entries the index holds (compaction changes neither).
    pub packs: u64,
    pub blobs: u64,
    /// Nothing was rewritten: the index was already in few files.
    pub skipped: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub snapshots: u64,
    pub trees: u64,
    pub blobs: u64,
    pub packs: u64,
    pub packs_read: u64,
    pub damaged_packs: Vec<String>,
    pub problems: Vec<CheckProblem>,
    pub notes: Vec<String>,
    /// The part of the packs read (`3/20`), when the check read one.
    #[serde(default)]
    pub subset: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckProblem {
    pub message: String,
    pub pack: Option<String>,
    pub blob: Option<String>,
    pub snapshots: Vec<String>,
    pub paths: Vec<String>,
}

/// Progress of a long operation, streamed a few times per second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationProgress {
    pub files_done: u64,
    pub bytes_done: u64,
    pub files_total: Option<u64>,
    pub bytes_total: Option<u64>,
    pub errors: u64,
    pub elapsed_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildResult {
    pub packs: u64,
    pub blobs: u64,
    /// Packs left out of the new index, with the reason.
    pub unreadable: Vec<(String, String)>,
    pub old_index_files: u64,
}
