//! Suspicious-activity alerts, lockouts, compliance results and the security report, as they
//! travel between daemon and client.

use serde::{Deserialize, Serialize};

/// A suspicious-activity pattern the daemon detects per uid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pattern {
    /// Denied or failed requests (and failed handshakes) in a short time.
    BruteForce,
    /// Large restores or key exports in a short time.
    MassExport,
    /// Many requests from a uid that is not an admin.
    UnusualAccess,
}

impl Pattern {
    pub const ALL: &'static [Pattern] = &[Self::BruteForce, Self::MassExport, Self::UnusualAccess];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BruteForce => "brute-force",
            Self::MassExport => "mass-export",
            Self::UnusualAccess => "unusual-access",
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One detection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertInfo {
    pub id: u64,
    pub time_ns: i64,
    pub uid: u32,
    pub pattern: Pattern,
    /// What was counted within the window, e.g. 5 (denied or failed requests).
    pub count: u64,
    /// The configured threshold it reached.
    pub threshold: u64,
    pub window_secs: u64,
    /// The evidence in words: what was counted and the last requests seen.
    pub detail: String,
    /// Until when the uid was locked out by this alert (none when lockout is off or the uid
    /// is exempt).
    pub locked_until_ns: Option<i64>,
    pub acked_by: Option<u32>,
    pub acked_ns: Option<i64>,
}

/// What `security unlock` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unlocked {
    pub uid: u32,
    /// When the lockout that was lifted would have ended; none when the uid was not locked.
    pub was_locked_until_ns: Option<i64>,
}

/// A compliance framework whose clauses the controls are mapped to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Framework {
    Gdpr,
    Hipaa,
    Iso27001,
    Soc2,
}

impl Framework {
    pub const ALL: &'static [Framework] = &[Self::Gdpr, Self::Hipaa, Self::Iso27001, Self::Soc2];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gdpr => "gdpr",
            Self::Hipaa => "hipaa",
            Self::Iso27001 => "iso27001",
            Self::Soc2 => "soc2",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlStatus {
    Pass,
    /// Not measured, or close to failing: look at the evidence.
    Warn,
    Fail,
}

impl ControlStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }
}

/// One control as evaluated on the live system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlResult {
    /// Stable id, e.g. `repo-encrypted`.
    pub id: String,
    pub title: String,
    pub status: ControlStatus,
    /// What was measured, in words (counts, names, ages).
    pub evidence: String,
    /// The clauses of the frameworks asked for that this control supports, e.g. `GDPR Art. 32(1)(a)`.
    pub clauses: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceReport {
    /// The frameworks evaluated.
    pub frameworks: Vec<Framework>,
    pub time_ns: i64,
    pub controls: Vec<ControlResult>,
}

/// One reason the security score is below 100.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreFactor {
    pub reason: String,
    /// Points taken off.
    pub points: u32,
}

/// A count per key (a uid, a pattern, a permission).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub key: String,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAge {
    pub repo: String,
    /// Days since the data key was made (the repository's creation; none when it did not open).
    pub age_days: Option<u64>,
    pub max_age_days: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiringBinding {
    pub subject: String,
    pub role: String,
    pub expires_ns: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityReport {
    pub days: u32,
    pub time_ns: i64,
    /// 0–100; 100 means nothing below lowered it.
    pub score: u32,
    pub factors: Vec<ScoreFactor>,
    pub denials_by_uid: Vec<Tally>,
    /// Denials by the permission that was missing.
    pub denials_by_permission: Vec<Tally>,
    pub alerts_by_uid: Vec<Tally>,
    pub alerts_by_pattern: Vec<Tally>,
    pub unacknowledged_alerts: u64,
    pub key_ages: Vec<KeyAge>,
    /// Bindings that expire within the report's days; none when bindings were not measured.
    pub expiring_bindings: Option<Vec<ExpiringBinding>>,
    /// The last verification of the audit chain, in words; none when not measured.
    pub audit_last_verify: Option<String>,
    pub compliance_failed: Vec<String>,
}
