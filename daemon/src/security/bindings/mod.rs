//! Role bindings: granted ones ([`store`], in sled) and declared ones (`[[security.binding]]`,
//! read from the settings in force, so a reload applies them), and the resolution of who holds
//! which role for one request ([`resolve`]). Nothing is cached per connection: every request
//! resolves against the bindings in force at that moment, so an expired or revoked binding
//! stops granting at once.
//!
//! Blocking: grants and revokes write sled; a group binding makes resolution read the user
//! database (NSS) for the caller's groups.

pub mod resolve;
pub mod store;

use crate::context::{Process, SettingsHandle};
use crate::settings::Settings;
use crate::state::{State, StateError};
use backupd_common::protocol::{
    BindingInfo, CheckAnswer, Expiry, GrantSource, Permission, RevokeTarget, Role, Subject,
};
use resolve::{Binding, Builtin, Caller};
use std::sync::{Arc, Mutex};

/// Why a grant or revoke was refused.
#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    #[error(
        "cannot grant `{role}`{scope}: it includes permission `{missing}`, which uid {uid} does \
         not hold there; ask a super-admin to grant it"
    )]
    TooStrong {
        role: Role,
        scope: String,
        missing: Permission,
        uid: u32,
    },
    #[error(
        "`--expires never` is allowed for super-admin bindings only; give the `{role}` binding \
         a duration such as `1y` or `90d`"
    )]
    NeverNotAllowed { role: Role },
    #[error("`--expires` must be longer than 0s, e.g. `1y` or `90d`")]
    ZeroExpiry,
    #[error("{repo:?} is not a repository name (1-64 letters, digits, `.`, `_`, `-`)")]
    BadRepo { repo: String },
    #[error("a binding names at most {max} repositories; grant several bindings instead")]
    TooManyRepos { max: usize },
    #[error("no binding `{id}`; `backupctl security bindings` lists the ids")]
    NotFound { id: String },
    #[error("no granted binding of {subject}{role}; `backupctl security bindings` lists them")]
    NoneMatch { subject: Subject, role: String },
    #[error(
        "binding `{id}` is declared in the config file; remove its [[security.binding]] table \
         and run `backupctl system reload`"
    )]
    Declared { id: String },
    #[error(
        "the daemon already keeps {max} granted bindings; revoke some (`backupctl security \
         revoke`) or bind groups instead of single uids"
    )]
    TooMany { max: usize },
    #[error(transparent)]
    State(#[from] StateError),
}

/// The settings declared bindings were resolved from, and the result.
type DeclaredCache = (Option<Arc<Settings>>, Arc<Vec<Binding>>);

/// Repositories one binding may name: every request resolves against every binding.
pub const MAX_REPOS: usize = 64;

/// The bindings service.
pub struct Bindings {
    store: store::Store,
    process: Process,
    settings: SettingsHandle,
    /// Declared bindings resolved from the settings they came from; rebuilt when a reload
    /// swaps the settings.
    declared: Mutex<DeclaredCache>,
}

impl Bindings {
    /// Opens the granted bindings. Blocking.
    pub fn open(
        state: &State,
        process: Process,
        settings: SettingsHandle,
    ) -> Result<Self, StateError> {
        Ok(Self {
            store: store::Store::open(state)?,
            process,
            settings,
            declared: Mutex::new((None, Arc::new(Vec::new()))),
        })
    }

    fn declared(&self) -> Arc<Vec<Binding>> {
        let now = self.settings.get();
        let mut guard = self.declared.lock().unwrap_or_else(|p| p.into_inner());
        if guard.0.as_ref().is_some_and(|s| Arc::ptr_eq(s, &now)) {
            return guard.1.clone();
        }
        // The settings were validated when loaded, so this resolves; a user or group deleted
        // since then drops only that binding.
        let loaded = now_ns();
        let list: Vec<Binding> = now
            .config
            .security
            .bindings
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                let r = b.resolve().ok()?;
                Some(Binding {
                    id: format!("config-{}", i + 1),
                    role: r.role,
                    subject: r.subject,
                    repos: r.repos,
                    created_ns: loaded,
                    expires_ns: r.expires.map(ns_of),
                    granted_by: None,
                })
            })
            .collect();
        *guard = (Some(now), Arc::new(list));
        guard.1.clone()
    }

    fn in_force(&self) -> Vec<Binding> {
        let mut all = Vec::clone(&self.declared());
        all.extend(self.store.all().iter().cloned());
        all
    }

    /// Every binding, declared first, expired ones included.
    pub fn list(&self) -> Vec<BindingInfo> {
        let now = now_ns();
        self.in_force().iter().map(|b| b.info(now)).collect()
    }

    fn builtin(&self) -> Builtin {
        Builtin {
            daemon_uid: self.process.daemon_uid,
            default_role: self.settings.get().config.security.default_role.role(),
        }
    }

    /// Everything that gives `uid` a role for a request about `repo`, strongest first.
    pub fn sources(&self, uid: u32, repo: Option<&str>) -> Vec<GrantSource> {
        let bindings = self.in_force();
        let groups = if bindings
            .iter()
            .any(|b| matches!(b.subject, Subject::Group(_)))
        {
            groups_of(uid)
        } else {
            Vec::new()
        };
        let now = now_ns();
        let caller = Caller {
            uid,
            groups: &groups,
        };
        resolve::sources(caller, repo, &bindings, self.builtin(), now)
    }

    /// Whether `uid` would be granted `permission` for `repo`, and by what.
    pub fn check(&self, uid: u32, permission: Permission, repo: Option<String>) -> CheckAnswer {
        let held = self.sources(uid, repo.as_deref());
        let granted_by = resolve::granting(&held, permission);
        CheckAnswer {
            uid,
            permission,
            repo,
            granted: !granted_by.is_empty(),
            granted_by,
            held,
        }
    }

    /// Binds `role` to `subject`, as `granter`. Blocking.
    pub fn grant(
        &self,
        granter: u32,
        role: Role,
        subject: Subject,
        repos: Vec<String>,
        expires: Expiry,
    ) -> Result<BindingInfo, BindingError> {
        if repos.len() > MAX_REPOS {
            return Err(BindingError::TooManyRepos { max: MAX_REPOS });
        }
        if let Some(bad) = repos
            .iter()
            .find(|r| !backupd_common::config::declared::valid_name(r))
        {
            return Err(BindingError::BadRepo { repo: bad.clone() });
        }
        resolve::may_grant(role, &repos, |repo| self.sources(granter, repo)).map_err(
            |missing| BindingError::TooStrong {
                role,
                scope: scope_text(&repos),
                missing,
                uid: granter,
            },
        )?;
        let now = now_ns();
        let expires_ns = match expires {
            Expiry::Never if role == Role::SuperAdmin => None,
            Expiry::Never => return Err(BindingError::NeverNotAllowed { role }),
            Expiry::In(d) if d.is_zero() => return Err(BindingError::ZeroExpiry),
            Expiry::In(d) => Some(now.saturating_add(ns(d))),
            Expiry::Default => {
                Some(now.saturating_add(ns(self.settings.get().config.security.binding_expiry)))
            }
        };
        if self.store.all().len() >= store::MAX_BINDINGS {
            return Err(BindingError::TooMany {
                max: store::MAX_BINDINGS,
            });
        }
        let b = self.store.insert(|id| Binding {
            id,
            role,
            subject,
            repos,
            created_ns: now,
            expires_ns,
            granted_by: Some(granter),
        })?;
        tracing::info!(id = %b.id, role = %role, subject = %subject, granter, "role granted");
        Ok(b.info(now))
    }

    /// Removes granted bindings. Blocking.
    pub fn revoke(&self, target: &RevokeTarget) -> Result<Vec<BindingInfo>, BindingError> {
        let gone = match target {
            RevokeTarget::Id(id) => {
                if self.declared().iter().any(|b| &b.id == id) {
                    return Err(BindingError::Declared { id: id.clone() });
                }
                let gone = self.store.remove(|b| &b.id == id)?;
                if gone.is_empty() {
                    return Err(BindingError::NotFound { id: id.clone() });
                }
                gone
            }
            RevokeTarget::Subject { subject, role } => {
                let gone = self
                    .store
                    .remove(|b| b.subject == *subject && role.is_none_or(|r| r == b.role))?;
                if gone.is_empty() {
                    return Err(BindingError::NoneMatch {
                        subject: *subject,
                        role: role.map(|r| format!(" as `{r}`")).unwrap_or_default(),
                    });
                }
                gone
            }
        };
        let now = now_ns();
        for b in &gone {
            tracing::info!(id = %b.id, role = %b.role, subject = %b.subject, "role revoked");
        }
        Ok(gone.iter().map(|b| b.info(now)).collect())
    }
}

fn scope_text(repos: &[String]) -> String {
    if repos.is_empty() {
        String::new()
    } else {
        format!(" on {}", repos.join(", "))
    }
}

fn now_ns() -> i64 {
    ns_of(std::time::SystemTime::now())
}

fn ns(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn ns_of(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH).map_or(0, ns)
}

/// The primary and supplementary gids of `uid` from the user database; none for a uid it does
/// not know (then only uid bindings can match).
fn groups_of(uid: u32) -> Vec<u32> {
    let Ok(Some(user)) = nix::unistd::User::from_uid(uid.into()) else {
        return Vec::new();
    };
    let Ok(name) = std::ffi::CString::new(user.name) else {
        return vec![user.gid.as_raw()];
    };
    nix::unistd::getgrouplist(&name, user.gid)
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_else(|_| vec![user.gid.as_raw()])
}
