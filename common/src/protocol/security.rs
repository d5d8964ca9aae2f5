//! Roles and permissions: what a caller may ask for. The one table of which role grants which
//! permission is [`Role::grants`]; `docs/SECURITY.md` prints it and a test keeps the two equal.

use serde::{Deserialize, Serialize};

/// A permission a request needs. Every request names exactly one; `backup.any` and
/// `restore.any` are named by no request: holding them lifts the rule that a backup or restore
/// runs with the requester's own file-system rights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Permission {
    /// Read the daemon's health and one's own identity.
    SystemRead,
    /// Reload the configuration, shut the daemon down, export and import its state.
    SystemManage,
    /// List repositories, read their details and statistics.
    RepoRead,
    /// Create, register, remove, check and re-index repositories.
    RepoManage,
    /// Export a repository's key, add key files, change passphrases.
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
            ),
            // Watch: the daemon's health, the queue, the repositories' names.
            Self::Viewer => matches!(permission, SystemRead | RepoRead | QueueRead | SourceRead),
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

/// `backupctl security ...` requests. Variants are appended, never reordered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SecurityRequest {
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
}

impl SecurityRequest {
    pub fn permission(&self) -> Permission {
        match self {
            Self::Alerts { .. } | Self::Compliance { .. } | Self::Report { .. } => {
                Permission::SecurityRead
            }
            Self::AckAlert { .. } | Self::Unlock { .. } => Permission::SecurityManage,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Alerts { .. } => "security alerts",
            Self::AckAlert { .. } => "security alerts ack",
            Self::Unlock { .. } => "security unlock",
            Self::Compliance { .. } => "security compliance",
            Self::Report { .. } => "security report",
        }
    }
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
    fn each_role_grants_a_subset_of_the_one_above() {
        for pair in Role::ALL.windows(2) {
            for p in Permission::ALL {
                assert!(!pair[1].grants(*p) || pair[0].grants(*p), "{} {p}", pair[1]);
            }
        }
    }
}
