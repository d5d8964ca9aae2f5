//! `[security]`: who may do what by default, how long a granted role lasts, and role bindings
//! declared in the config file (`[[security.binding]]`). Root is always `super-admin` and the
//! daemon's own uid `admin`; these settings cover everyone else.

use crate::protocol::{Role, Subject};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// The role of a uid that no binding names: a role name, or "none" to refuse such callers
    /// everything.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub default_role: DefaultRole,
    /// How long a binding from `backupctl security grant` lasts when it names no `--expires`.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub binding_expiry: Duration,
    /// Role bindings applied at start and on reload, one table each.
    #[serde(rename = "binding", skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<BindingConfig>,
    /// How long a uid that set off a suspicious-activity alert is refused everything; "0"
    /// (the default) turns lockout off. Root and the daemon's own uid are never locked out.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub lockout: std::time::Duration,
    /// The thresholds of the suspicious-activity patterns.
    pub detect: super::detect::DetectConfig,
    /// The policies compliance controls measure against.
    pub compliance: super::detect::ComplianceConfig,
    /// Rotate a repository's data key when its current version is older than this; "0" (the
    /// default) never rotates automatically.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub key_rotation: Duration,
    /// Queue a low-priority re-encryption (which then retires the older versions) once the
    /// current version is older than this while an older one still has key material; "0"
    /// (the default) never does.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub key_reencrypt_after: Duration,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            default_role: DefaultRole::Role(Role::Viewer),
            binding_expiry: Duration::from_secs(365 * 86_400),
            bindings: Vec::new(),
            lockout: std::time::Duration::ZERO,
            detect: Default::default(),
            compliance: Default::default(),
            key_rotation: Duration::ZERO,
            key_reencrypt_after: Duration::ZERO,
        }
    }
}

/// One `[[security.binding]]` table: a role for exactly one of `uid`, `user` or `group`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct BindingConfig {
    /// The role granted: `super-admin`, `admin`, `user` or `viewer`.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub role: Role,
    /// A numeric user id.
    #[serde(default)]
    pub uid: Option<u32>,
    /// A user name, resolved when the configuration is loaded.
    #[serde(default)]
    pub user: Option<String>,
    /// A group name or gid.
    #[serde(default)]
    pub group: Option<String>,
    /// Repositories the binding is limited to; empty: every repository.
    #[serde(default)]
    pub repos: Vec<String>,
    /// An RFC 3339 date or time (`2027-06-30`, `2027-06-30T12:00:00Z`), or `never` (super-admin
    /// only). Required for every other role: a declared binding has no moment it was granted
    /// from which a default could count.
    #[serde(default)]
    pub expires: Option<String>,
}

/// A declared binding with its names resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedBinding {
    pub role: Role,
    pub subject: Subject,
    pub repos: Vec<String>,
    /// `None`: never.
    pub expires: Option<SystemTime>,
}

impl SecurityConfig {
    /// Checks every key; `Err((key, message))` names the bad one (`security.binding[2].user`).
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.binding_expiry.is_zero() {
            return Err((
                "security.binding_expiry".into(),
                "must be longer than 0s, e.g. \"1y\" or \"90d\"".into(),
            ));
        }
        self.resolved_bindings().map(drop)
    }

    /// The age a current data key may reach: `key_rotation` when set, otherwise the
    /// compliance policy `key_max_age`.
    pub fn key_age_policy(&self) -> Duration {
        if self.key_rotation.is_zero() {
            self.compliance.key_max_age
        } else {
            self.key_rotation
        }
    }

    /// The declared bindings with user and group names resolved to ids.
    pub fn resolved_bindings(&self) -> Result<Vec<ResolvedBinding>, (String, String)> {
        self.bindings
            .iter()
            .enumerate()
            .map(|(i, b)| {
                b.resolve()
                    .map_err(|(key, msg)| (format!("security.binding[{}].{key}", i + 1), msg))
            })
            .collect()
    }
}

impl BindingConfig {
    /// Resolves names to ids; `Err((key, message))` names the bad key within the table.
    pub fn resolve(&self) -> Result<ResolvedBinding, (&'static str, String)> {
        let subject = match (&self.uid, &self.user, &self.group) {
            (Some(uid), None, None) => Subject::Uid(*uid),
            (None, Some(user), None) => {
                Subject::Uid(crate::client::parse_user(user).map_err(|m| ("user", m))?)
            }
            (None, None, Some(group)) => {
                Subject::Group(crate::client::parse_group(group).map_err(|m| ("group", m))?)
            }
            _ => {
                return Err((
                    "role",
                    "needs exactly one of `uid`, `user` or `group` beside it".into(),
                ))
            }
        };
        if let Some(bad) = self.repos.iter().find(|r| !super::declared::valid_name(r)) {
            return Err((
                "repos",
                format!("{bad:?} is not a repository name (1-64 letters, digits, `.`, `_`, `-`)"),
            ));
        }
        let expires = match self.expires.as_deref() {
            Some("never") | None if self.role == Role::SuperAdmin => None,
            Some("never") => {
                return Err((
                    "expires",
                    format!(
                        "\"never\" is allowed for super-admin only; give `{}` an end date such \
                         as \"2027-06-30\"",
                        self.role
                    ),
                ))
            }
            None => {
                return Err((
                    "expires",
                    format!(
                        "is missing: a declared `{}` binding needs an end date such as \
                         \"2027-06-30\"",
                        self.role
                    ),
                ))
            }
            Some(text) => Some(parse_date(text).map_err(|m| ("expires", m))?),
        };
        Ok(ResolvedBinding {
            role: self.role,
            subject,
            repos: self.repos.clone(),
            expires,
        })
    }
}

/// `2027-06-30` (midnight UTC) or an RFC 3339 time.
fn parse_date(text: &str) -> Result<SystemTime, String> {
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    };
    humantime::parse_rfc3339_weak(&full).map_err(|e| {
        format!("{text:?} is not a date: {e}; write \"2027-06-30\" or \"2027-06-30T12:00:00Z\"")
    })
}

/// A role, or `none`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", untagged)]
pub enum DefaultRole {
    Role(Role),
    None(NoneRole),
}

/// The word `none`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoneRole {
    None,
}

impl DefaultRole {
    pub fn role(self) -> Option<Role> {
        match self {
            Self::Role(r) => Some(r),
            Self::None(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        security: SecurityConfig,
    }

    fn parse(text: &str) -> Result<Option<Role>, toml::de::Error> {
        toml::from_str::<Doc>(text).map(|d| d.security.default_role.role())
    }

    fn bindings(text: &str) -> Result<Vec<ResolvedBinding>, (String, String)> {
        let doc: Doc = toml::from_str(text).map_err(|e| (String::new(), e.to_string()))?;
        doc.security.validate()?;
        doc.security.resolved_bindings()
    }

    #[test]
    fn default_role_is_a_role_or_none() {
        assert_eq!(parse("[security]\n").ok(), Some(Some(Role::Viewer)));
        assert_eq!(
            parse("[security]\ndefault_role = \"user\"").ok(),
            Some(Some(Role::User))
        );
        assert_eq!(
            parse("[security]\ndefault_role = \"none\"").ok(),
            Some(None)
        );
        assert!(parse("[security]\ndefault_role = \"root\"").is_err());
    }

    #[test]
    fn declared_bindings_resolve_names_and_dates() {
        let got = bindings(
            "[[security.binding]]\nrole = \"user\"\nuser = \"root\"\nrepos = [\"home\"]\n\
             expires = \"2030-01-02\"\n\
             [[security.binding]]\nrole = \"super-admin\"\ngroup = \"0\"\n",
        )
        .expect("valid");
        assert_eq!(got[0].subject, Subject::Uid(0));
        assert_eq!(got[0].repos, ["home"]);
        let secs = got[0].expires.and_then(|t| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs())
        });
        assert_eq!(secs, Some(1_893_542_400));
        assert_eq!(got[1].subject, Subject::Group(0));
        assert_eq!(got[1].expires, None);
    }

    #[test]
    fn a_bad_declared_binding_names_its_table_and_key() {
        let key = |text: &str| bindings(text).expect_err("invalid").0;
        assert_eq!(
            key("[[security.binding]]\nrole = \"admin\"\nuid = 5\nexpires = \"never\"\n"),
            "security.binding[1].expires"
        );
        assert_eq!(
            key("[[security.binding]]\nrole = \"admin\"\nuid = 5\n"),
            "security.binding[1].expires"
        );
        assert_eq!(
            key("[[security.binding]]\nrole = \"super-admin\"\nuid = 1\n\
                 [[security.binding]]\nrole = \"user\"\nuid = 5\ngroup = \"0\"\n\
                 expires = \"2030-01-01\"\n"),
            "security.binding[2].role"
        );
        assert_eq!(
            key(
                "[[security.binding]]\nrole = \"user\"\nuser = \"no-such-user-xyz\"\n\
                 expires = \"2030-01-01\"\n"
            ),
            "security.binding[1].user"
        );
        assert_eq!(
            key("[[security.binding]]\nrole = \"user\"\nuid = 5\nexpires = \"soon\"\n"),
            "security.binding[1].expires"
        );
    }
}
