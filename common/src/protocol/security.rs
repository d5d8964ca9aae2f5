//! Roles and permissions: what a caller may ask for. The one table of which role grants which
//! permission is [`Role::grants`]; `docs/SECURITY.md` prints it and a test keeps the two equal.

use serde::{Deserialize, Serialize};

/// A permission a request needs. Every request names exactly one; `backup.any` and
/// `restore.any` are named by no request: holding them lifts the rule that a backup or restore
/// runs with the requester's own file-system rights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Permission {
    /// Read the daemon's health, its performance samples, bottlenecks and tuning history, and
    /// one's own identity.
    SystemRead,
    /// Reload the configuration, shut the daemon down, export and import its state, run or
    /// switch off the performance tuner.
    SystemManage,
    /// List repositories, read their details and statistics.
    RepoRead,
    /// Create, register, remove, check and re-index repositories.
    RepoManage,
    /// Export a repository's key, add key files, change passphrases, rotate data keys, encrypt
    /// and decrypt files with a repository's data key.
    RepoKey,
    /// Back up paths the requester can read, as the requester.
    BackupOwn,
    /// Back up any path, as the daemon (root).
    BackupAny,
    /// List snapshots (a `user` sees only their own).
    SnapshotList,
    /// Forget snapshots and prune repositories.
    SnapshotForget,
    /// Restore snapshots the requester may see into directories the requester can write, as
    /// the requester.
    RestoreOwn,
    /// Restore anything anywhere, as the daemon (root), with owners and modes as recorded.
    RestoreAny,
    /// See the job queue: status, jobs, history, events (others' paths hidden).
    QueueRead,
    /// Cancel jobs, retry or purge dead letters, set the number of workers, queue test jobs.
    QueueManage,
    /// List continuously backed-up sources.
    SourceRead,
    /// Add and remove continuously backed-up sources.
    SourceManage,
    /// Read the audit log and verify its chain.
    AuditRead,
    /// Read role bindings, alerts, compliance and the security report.
    SecurityRead,
    /// Grant and revoke roles, acknowledge alerts, lift lockouts.
    SecurityManage,
    /// List directory sync pairs, their history and conflicts.
    SyncRead,
    /// Add, remove, pause, resume and run directory sync pairs, resolve their conflicts.
    SyncManage,
}

impl Permission {
    /// Every permission, in the order of the table in `docs/SECURITY.md`.
    pub const ALL: &'static [Permission] = &[
        Self::SystemRead,
        Self::SystemManage,
        Self::RepoRead,
        Self::RepoManage,
        Self::RepoKey,
        Self::BackupOwn,
        Self::BackupAny,
        Self::SnapshotList,
        Self::SnapshotForget,
        Self::RestoreOwn,
        Self::RestoreAny,
        Self::QueueRead,
        Self::QueueManage,
        Self::SourceRead,
        Self::SourceManage,
        Self::SyncRead,
        Self::SyncManage,
        Self::AuditRead,
        Self::SecurityRead,
        Self::SecurityManage,
    ];

    /// The name users see in denials, bindings and `security check`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SystemRead => "system.read",
            Self::SystemManage => "system.manage",
            Self::RepoRead => "repo.read",
            Self::RepoManage => "repo.manage",
            Self::RepoKey => "repo.key",
            Self::BackupOwn => "backup.own",
            Self::BackupAny => "backup.any",
            Self::SnapshotList => "snapshot.list",
            Self::SnapshotForget => "snapshot.forget",
            Self::RestoreOwn => "restore.own",
            Self::RestoreAny => "restore.any",
            Self::QueueRead => "queue.read",
            Self::QueueManage => "queue.manage",
            Self::SourceRead => "source.read",
            Self::SourceManage => "source.manage",
            Self::AuditRead => "audit.read",
            Self::SecurityRead => "security.read",
            Self::SecurityManage => "security.manage",
            Self::SyncRead => "sync.read",
            Self::SyncManage => "sync.manage",
        }
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Permission {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|p| p.as_str()).collect();
                format!(
                    "unknown permission `{s}`; permissions: {}",
                    names.join(", ")
                )
            })
    }
}

/// What a caller may do, as a set of permissions. Root is always `super-admin` and the
/// daemon's own uid `admin`; everyone else gets the configured default until a binding says
/// otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    SuperAdmin,
    Admin,
    User,
    Viewer,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: &'static [Role] = &[Self::SuperAdmin, Self::Admin, Self::User, Self::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SuperAdmin => "super-admin",
            Self::Admin => "admin",
            Self::User => "user",
            Self::Viewer => "viewer",
        }
    }

    /// The one table of who may do what.
    pub fn grants(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Self::SuperAdmin => true,
            // Everything but deciding who may do what.
            Self::Admin => !matches!(permission, SecurityManage),
            // Their own files: back up what they can read, restore into what they can write,
            // see their own snapshots and jobs.
            Self::User => matches!(
                permission,
                SystemRead
                    | RepoRead
                    | BackupOwn
                    | SnapshotList
                    | RestoreOwn
                    | QueueRead
                    | SourceRead
                    | SyncRead
            ),
            // Watch: the daemon's health, the queue, the repositories' names.
            Self::Viewer => matches!(
                permission,
                SystemRead | RepoRead | QueueRead | SourceRead | SyncRead
            ),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`; roles: super-admin, admin, user, viewer"))
    }
}

/// Who a binding names: one uid, or every member of a group (primary or supplementary).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Subject {
    Uid(u32),
    Group(u32),
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Uid(u) => write!(f, "uid {u}"),
            Self::Group(g) => write!(f, "group {g}"),
        }
    }
}

/// How long a granted binding lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expiry {
    /// `security.binding_expiry` from now.
    Default,
    /// This long from now.
    In(std::time::Duration),
    /// Never: for `super-admin` bindings only.
    Never,
}

/// Requests of the `security` group. Append only: bincode encodes variants by index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SecurityRequest {
    /// Bind a role to a uid or group -> [`SecurityResponse::Granted`]. Refused when the binding
    /// would be stronger than what the granter holds. Not streamed.
    Grant {
        role: Role,
        subject: Subject,
        /// Repositories the binding is limited to; empty: every repository.
        repos: Vec<String>,
        expires: Expiry,
    },
    /// Remove bindings -> [`SecurityResponse::Revoked`] (what was removed). Not streamed.
    Revoke(RevokeTarget),
    /// Every binding, expired ones included -> [`SecurityResponse::Bindings`]. Not streamed.
    Bindings,
    /// Whether `uid` would be granted `permission` (on `repo`) and why; changes nothing ->
    /// [`SecurityResponse::Check`]. Not streamed.
    Check {
        uid: u32,
        permission: Permission,
        repo: Option<String>,
    },
    /// Audit entries matching the query. Without `follow` -> `Response::AuditEntries` (oldest
    /// first). With `follow`: streams `Progress::Audit` (the stored matches, then new ones) until
    /// the client goes away or the daemon stops, then `Response::Done`.
    Audit(super::audit::AuditQuery),
    /// Walks the audit chain in sled and in the day files and checks every checkpoint signature
    /// -> `Response::AuditVerify`. Not streamed.
    AuditVerify,
    /// -> [`crate::protocol::Response::SecurityAlerts`]: unacknowledged alerts, or with `all`
    /// every stored one (newest first, at most 1000). Not streamed.
    Alerts { all: bool },
    /// -> [`crate::protocol::Response::SecurityAlert`]: records the caller as having
    /// acknowledged alert `id`. Not streamed.
    AckAlert { id: u64 },
    /// -> [`crate::protocol::Response::Unlocked`]: lifts the lockout of `uid`. Not streamed.
    Unlock { uid: u32 },
    /// -> [`crate::protocol::Response::Compliance`]: the controls evaluated now for
    /// `frameworks` (empty: all). Not streamed.
    Compliance {
        frameworks: Vec<crate::protocol::Framework>,
    },
    /// -> [`crate::protocol::Response::SecurityReport`] over the last `days` (1–366). Not
    /// streamed.
    Report { days: u32 },
    /// Seal the passed input into the passed output with the repository's current data key
    /// (docs/FORMAT.md, "Sealed files"). Carries two descriptors (`SCM_RIGHTS`): input, output.
    /// Streams `Progress::Operation` about once a second, then
    /// [`crate::protocol::Response::Encrypted`].
    Encrypt(super::file_crypt::FileCryptRequest),
    /// Open a sealed file: verify each chunk, write its plaintext once it authenticates. Same
    /// descriptors and frames as `Encrypt`, then [`crate::protocol::Response::Decrypted`]; an
    /// error names the chunk that failed and why.
    Decrypt(super::file_crypt::FileCryptRequest),
}

impl SecurityRequest {
    pub fn permission(&self) -> Permission {
        match self {
            Self::Grant { .. } | Self::Revoke(_) => Permission::SecurityManage,
            Self::Bindings | Self::Check { .. } => Permission::SecurityRead,
            Self::Audit(_) | Self::AuditVerify => Permission::AuditRead,
            Self::Alerts { .. } | Self::Compliance { .. } | Self::Report { .. } => {
                Permission::SecurityRead
            }
            Self::AckAlert { .. } | Self::Unlock { .. } => Permission::SecurityManage,
            // Whoever can seal and open files with a repository's data key holds its key.
            Self::Encrypt(_) | Self::Decrypt(_) => Permission::RepoKey,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Grant { .. } => "security grant",
            Self::Revoke(_) => "security revoke",
            Self::Bindings => "security bindings",
            Self::Check { .. } => "security check",
            Self::Audit(_) => "security audit",
            Self::AuditVerify => "security audit verify",
            Self::Alerts { .. } => "security alerts",
            Self::AckAlert { .. } => "security alerts ack",
            Self::Unlock { .. } => "security unlock",
            Self::Compliance { .. } => "security compliance",
            Self::Report { .. } => "security report",
            Self::Encrypt(_) => "security encrypt",
            Self::Decrypt(_) => "security decrypt",
        }
    }
}

/// Which bindings a revoke removes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RevokeTarget {
    /// The binding with this id.
    Id(String),
    /// Every granted binding of `subject` (of `role`, when given).
    Subject {
        subject: Subject,
        role: Option<Role>,
    },
}

/// A role binding as `security bindings` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingInfo {
    /// `b<N>` for granted bindings, `config-<N>` for the N-th `[[security.binding]]` table.
    pub id: String,
    pub role: Role,
    pub subject: Subject,
    /// Repositories it is limited to; empty: every repository.
    pub repos: Vec<String>,
    /// Unix nanoseconds.
    pub created_ns: i64,
    /// Unix nanoseconds; `None`: never.
    pub expires_ns: Option<i64>,
    /// Whether it had expired when the list was made: it grants nothing.
    pub expired: bool,
    /// The uid that granted it; `None` for a binding declared in the config file.
    pub granted_by: Option<u32>,
    /// Declared in the config file: changed there, not by `security revoke`.
    pub declared: bool,
}

impl BindingInfo {
    /// `admin on repos a, b` / `super-admin`: the role and where it holds.
    pub fn describe(&self) -> String {
        if self.repos.is_empty() {
            self.role.to_string()
        } else {
            format!("{} on {}", self.role, self.repos.join(", "))
        }
    }
}

/// What grants (or would grant) a permission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GrantSource {
    /// uid 0 is always `super-admin`.
    Root,
    /// The daemon's own uid is always `admin`.
    DaemonUser,
    Binding(BindingInfo),
    /// No binding applies: `security.default_role`.
    DefaultRole(Role),
}

impl GrantSource {
    pub fn role(&self) -> Role {
        match self {
            Self::Root => Role::SuperAdmin,
            Self::DaemonUser => Role::Admin,
            Self::Binding(b) => b.role,
            Self::DefaultRole(r) => *r,
        }
    }
}

impl std::fmt::Display for GrantSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Root => f.write_str("built-in rule: root is super-admin"),
            Self::DaemonUser => f.write_str("built-in rule: the daemon's own uid is admin"),
            Self::Binding(b) => write!(f, "binding {} ({} for {})", b.id, b.describe(), b.subject),
            Self::DefaultRole(r) => write!(f, "security.default_role ({r})"),
        }
    }
}

/// The answer to [`SecurityRequest::Check`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckAnswer {
    pub uid: u32,
    pub permission: Permission,
    /// The repository the question was about, as resolved (`None`: none).
    pub repo: Option<String>,
    pub granted: bool,
    /// What grants it (empty when not granted).
    pub granted_by: Vec<GrantSource>,
    /// Everything that applies to the uid for this repository, granting or not.
    pub held: Vec<GrantSource>,
}

/// Final results of the `security` group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SecurityResponse {
    Granted(BindingInfo),
    Revoked(Vec<BindingInfo>),
    Bindings(Vec<BindingInfo>),
    Check(CheckAnswer),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_area_dot_verb_and_parse_back() {
        assert!(Permission::ALL.len() >= 15);
        for p in Permission::ALL {
            let (area, verb) = p.as_str().split_once('.').expect("area.verb");
            assert!(!area.is_empty() && !verb.is_empty());
            assert_eq!(p.as_str().parse::<Permission>(), Ok(*p));
        }
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(*r));
        }
        assert!("repo.destroy".parse::<Permission>().is_err());
    }

    #[test]
    fn the_role_table_in_security_md_is_the_code() {
        let doc = include_str!("../../../docs/SECURITY.md");
        let mut lines = doc.lines().skip_while(|l| !l.starts_with("| permission |"));
        let header: Vec<&str> = cells(lines.next().expect("the role table's header"));
        let roles: Vec<Role> = header[2..]
            .iter()
            .map(|r| r.parse().expect("a role column"))
            .collect();
        assert_eq!(roles, Role::ALL, "one column per role, strongest first");
        let rows: Vec<Vec<&str>> = lines
            .skip(1)
            .take_while(|l| l.starts_with('|'))
            .map(cells)
            .collect();
        let named: Vec<Permission> = rows
            .iter()
            .map(|r| r[0].trim_matches('`').parse().expect("a permission row"))
            .collect();
        assert_eq!(named, Permission::ALL, "one row per permission, in order");
        for (row, p) in rows.iter().zip(Permission::ALL) {
            assert!(!row[1].is_empty(), "{p} has a meaning");
            for (cell, role) in row[2..].iter().zip(Role::ALL) {
                let documented = match *cell {
                    "yes" => true,
                    "—" => false,
                    other => panic!("{p} × {role}: `{other}` is neither `yes` nor `—`"),
                };
                assert_eq!(documented, role.grants(*p), "{p} × {role}");
            }
        }
    }

    fn cells(line: &str) -> Vec<&str> {
        line.trim_matches('|').split('|').map(str::trim).collect()
    }

    #[test]
    fn each_role_grants_a_subset_of_the_one_above() {
        for pair in Role::ALL.windows(2) {
            for p in Permission::ALL {
                assert!(!pair[1].grants(*p) || pair[0].grants(*p), "{} {p}", pair[1]);
            }
        }
    }
}
