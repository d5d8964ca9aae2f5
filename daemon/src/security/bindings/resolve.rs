//! Who holds which role, for one request: pure functions over the bindings in force, so the
//! rules are tested without a daemon.
//!
//! Root is always `super-admin` and the daemon's own uid `admin`. For everyone else the roles
//! are those of the unexpired bindings naming the uid or one of its groups whose scope covers
//! the request's repository; when none does, `security.default_role`. A binding limited to
//! repositories covers requests about one of them only: a request that concerns no repository
//! (`system health`, `queue status`, `security bindings`) is covered by unscoped bindings alone.

use backupd_common::protocol::{BindingInfo, GrantSource, Permission, Role, Subject};

/// A binding in force: granted (stored in sled) or declared in the config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub id: String,
    pub role: Role,
    pub subject: Subject,
    pub repos: Vec<String>,
    pub created_ns: i64,
    /// `None`: never.
    pub expires_ns: Option<i64>,
    /// `None`: declared in the config file.
    pub granted_by: Option<u32>,
}

impl Binding {
    pub fn expired(&self, now_ns: i64) -> bool {
        self.expires_ns.is_some_and(|at| at <= now_ns)
    }

    /// Whether the binding covers a request about `repo` (`None`: about no repository).
    pub fn covers(&self, repo: Option<&str>) -> bool {
        self.repos.is_empty() || repo.is_some_and(|r| self.repos.iter().any(|s| s == r))
    }

    fn names(&self, uid: u32, groups: &[u32]) -> bool {
        match self.subject {
            Subject::Uid(u) => u == uid,
            Subject::Group(g) => groups.contains(&g),
        }
    }

    pub fn info(&self, now_ns: i64) -> BindingInfo {
        BindingInfo {
            id: self.id.clone(),
            role: self.role,
            subject: self.subject,
            repos: self.repos.clone(),
            created_ns: self.created_ns,
            expires_ns: self.expires_ns,
            expired: self.expired(now_ns),
            granted_by: self.granted_by,
            declared: self.granted_by.is_none(),
        }
    }
}

/// What holds regardless of bindings.
#[derive(Clone, Copy, Debug)]
pub struct Builtin {
    pub daemon_uid: u32,
    pub default_role: Option<Role>,
}

/// The caller a question is about.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    pub uid: u32,
    /// Primary and supplementary gids.
    pub groups: &'a [u32],
}

/// Everything that gives `caller` a role for a request about `repo`, strongest first.
pub fn sources(
    caller: Caller<'_>,
    repo: Option<&str>,
    bindings: &[Binding],
    builtin: Builtin,
    now_ns: i64,
) -> Vec<GrantSource> {
    if caller.uid == 0 {
        return vec![GrantSource::Root];
    }
    let mut out: Vec<GrantSource> = bindings
        .iter()
        .filter(|b| !b.expired(now_ns) && b.names(caller.uid, caller.groups) && b.covers(repo))
        .map(|b| GrantSource::Binding(b.info(now_ns)))
        .collect();
    if caller.uid == builtin.daemon_uid {
        out.push(GrantSource::DaemonUser);
    } else if out.is_empty() {
        out.extend(builtin.default_role.map(GrantSource::DefaultRole));
    }
    out.sort_by_key(GrantSource::role);
    out
}

/// Which of `sources` grant `permission`.
pub fn granting(sources: &[GrantSource], permission: Permission) -> Vec<GrantSource> {
    sources
        .iter()
        .filter(|s| s.role().grants(permission))
        .cloned()
        .collect()
}

/// The strongest role among `sources` (they are sorted strongest first).
pub fn strongest(sources: &[GrantSource]) -> Option<Role> {
    sources.first().map(GrantSource::role)
}

/// Whether someone holding `sources` for every repository in `repos` (or, when `repos` is
/// empty, for requests about no repository) may hand out `role` there: every permission the
/// role grants must be one they hold. `sources_for` answers per repository.
pub fn may_grant(
    role: Role,
    repos: &[String],
    mut sources_for: impl FnMut(Option<&str>) -> Vec<GrantSource>,
) -> Result<(), Permission> {
    let scopes: Vec<Option<&str>> = if repos.is_empty() {
        vec![None]
    } else {
        repos.iter().map(|r| Some(r.as_str())).collect()
    };
    for scope in scopes {
        let held = sources_for(scope);
        if let Some(missing) = Permission::ALL
            .iter()
            .find(|p| role.grants(**p) && granting(&held, **p).is_empty())
        {
            return Err(*missing);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn binding(
        id: &str,
        role: Role,
        subject: Subject,
        repos: &[&str],
        exp: Option<i64>,
    ) -> Binding {
        Binding {
            id: id.into(),
            role,
            subject,
            repos: repos.iter().map(|r| r.to_string()).collect(),
            created_ns: 0,
            expires_ns: exp,
            granted_by: Some(0),
        }
    }

    const BUILTIN: Builtin = Builtin {
        daemon_uid: 999,
        default_role: Some(Role::Viewer),
    };

    fn roles(uid: u32, groups: &[u32], repo: Option<&str>, b: &[Binding]) -> Vec<Role> {
        sources(Caller { uid, groups }, repo, b, BUILTIN, NOW)
            .iter()
            .map(GrantSource::role)
            .collect()
    }

    #[test]
    fn root_and_the_daemon_uid_are_built_in_and_others_get_the_default() {
        assert_eq!(roles(0, &[], None, &[]), [Role::SuperAdmin]);
        assert_eq!(roles(999, &[], None, &[]), [Role::Admin]);
        assert_eq!(roles(1000, &[], None, &[]), [Role::Viewer]);
        let none = Builtin {
            default_role: None,
            ..BUILTIN
        };
        let s = sources(
            Caller {
                uid: 1000,
                groups: &[],
            },
            None,
            &[],
            none,
            NOW,
        );
        assert!(s.is_empty());
    }

    #[test]
    fn bindings_match_by_uid_or_group_and_stop_at_expiry() {
        let b = [
            binding("b1", Role::User, Subject::Uid(1000), &[], Some(NOW + 1)),
            binding("b2", Role::Admin, Subject::Group(50), &[], None),
            binding("b3", Role::Admin, Subject::Uid(1001), &[], Some(NOW)),
        ];
        assert_eq!(roles(1000, &[], None, &b), [Role::User]);
        assert_eq!(roles(1000, &[7, 50], None, &b), [Role::Admin, Role::User]);
        // Expired at NOW exactly: the default again.
        assert_eq!(roles(1001, &[], None, &b), [Role::Viewer]);
    }

    #[test]
    fn a_repo_scoped_binding_covers_its_repositories_only() {
        let b = [binding(
            "b1",
            Role::User,
            Subject::Uid(1000),
            &["home"],
            None,
        )];
        assert_eq!(roles(1000, &[], Some("home"), &b), [Role::User]);
        assert_eq!(roles(1000, &[], Some("other"), &b), [Role::Viewer]);
        assert_eq!(roles(1000, &[], None, &b), [Role::Viewer]);
    }

    #[test]
    fn nobody_grants_more_than_they_hold() {
        let scoped = [binding(
            "b1",
            Role::SuperAdmin,
            Subject::Uid(5),
            &["home"],
            None,
        )];
        let held = |repo: Option<&str>| {
            sources(
                Caller {
                    uid: 5,
                    groups: &[],
                },
                repo,
                &scoped,
                BUILTIN,
                NOW,
            )
        };
        assert_eq!(may_grant(Role::SuperAdmin, &["home".into()], held), Ok(()));
        assert_eq!(may_grant(Role::User, &[], held), Err(Permission::BackupOwn));
        assert_eq!(
            may_grant(Role::User, &["other".into()], held),
            Err(Permission::BackupOwn)
        );
        let admin = |_: Option<&str>| vec![GrantSource::DaemonUser];
        assert_eq!(
            may_grant(Role::SuperAdmin, &[], admin),
            Err(Permission::SecurityManage)
        );
        assert_eq!(may_grant(Role::Admin, &[], admin), Ok(()));
    }
}
