//! `[security]`: who may do what by default. Root is always `super-admin` and the daemon's own
//! uid `admin`; these settings cover everyone else.

use crate::protocol::Role;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// The role of a uid that no binding names: a role name, or "none" to refuse such callers
    /// everything.
    pub default_role: DefaultRole,
    /// How long a uid that set off a suspicious-activity alert is refused everything; "0"
    /// (the default) turns lockout off. Root and the daemon's own uid are never locked out.
    #[serde(with = "humantime_serde")]
    pub lockout: std::time::Duration,
    /// `[security.detect]`: the thresholds of the suspicious-activity patterns.
    pub detect: super::detect::DetectConfig,
    /// `[security.compliance]`: the policies compliance controls measure against.
    pub compliance: super::detect::ComplianceConfig,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            default_role: DefaultRole::Role(Role::Viewer),
            lockout: std::time::Duration::ZERO,
            detect: Default::default(),
            compliance: Default::default(),
        }
    }
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
}
