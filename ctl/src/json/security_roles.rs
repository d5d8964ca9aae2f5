//! Role bindings and permission checks (`security grant/revoke/bindings/check`).

use super::time;
use backupd_common::protocol::{BindingInfo, CheckAnswer, GrantSource, Subject};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct BindingView {
    pub id: String,
    pub role: &'static str,
    /// `uid` or `group`.
    pub subject_kind: &'static str,
    pub subject_id: u32,
    /// The user or group name, when the client's system knows one.
    pub subject_name: Option<String>,
    pub repos: Vec<String>,
    pub created: String,
    /// `None`: never expires.
    pub expires: Option<String>,
    /// Milliseconds left; 0 once expired, `None` for never.
    pub expires_in_ms: Option<u64>,
    pub expired: bool,
    pub granted_by: Option<u32>,
    pub declared: bool,
}

pub fn subject_name(subject: Subject) -> Option<String> {
    match subject {
        Subject::Uid(u) => backupd_common::client::user_name(u),
        Subject::Group(g) => backupd_common::client::group_name(g),
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl From<&BindingInfo> for BindingView {
    fn from(b: &BindingInfo) -> Self {
        let (subject_kind, subject_id) = match b.subject {
            Subject::Uid(u) => ("uid", u),
            Subject::Group(g) => ("group", g),
        };
        let now = now_ns();
        Self {
            id: b.id.clone(),
            role: b.role.as_str(),
            subject_kind,
            subject_id,
            subject_name: subject_name(b.subject),
            repos: b.repos.clone(),
            created: time(b.created_ns),
            expires: b.expires_ns.map(time),
            expires_in_ms: b
                .expires_ns
                .map(|at| u64::try_from(at.saturating_sub(now) / 1_000_000).unwrap_or(0)),
            expired: b.expired,
            granted_by: b.granted_by,
            declared: b.declared,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SourceView {
    /// `root`, `daemon-user`, `binding` or `default-role`.
    pub kind: &'static str,
    pub role: &'static str,
    pub binding: Option<BindingView>,
}

impl From<&GrantSource> for SourceView {
    fn from(s: &GrantSource) -> Self {
        let (kind, binding) = match s {
            GrantSource::Root => ("root", None),
            GrantSource::DaemonUser => ("daemon-user", None),
            GrantSource::Binding(b) => ("binding", Some(BindingView::from(b))),
            GrantSource::DefaultRole(_) => ("default-role", None),
        };
        Self {
            kind,
            role: s.role().as_str(),
            binding,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CheckView {
    pub uid: u32,
    pub permission: &'static str,
    pub repo: Option<String>,
    pub granted: bool,
    pub granted_by: Vec<SourceView>,
    pub held: Vec<SourceView>,
}

impl From<&CheckAnswer> for CheckView {
    fn from(c: &CheckAnswer) -> Self {
        Self {
            uid: c.uid,
            permission: c.permission.as_str(),
            repo: c.repo.clone(),
            granted: c.granted,
            granted_by: c.granted_by.iter().map(SourceView::from).collect(),
            held: c.held.iter().map(SourceView::from).collect(),
        }
    }
}
