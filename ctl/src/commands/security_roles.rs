//! `backupctl security grant/revoke/bindings/check`: role bindings.

use super::Failure;
use crate::client::Client;
use crate::exit::ExitCode;
use crate::json::security_roles::{subject_name, BindingView, CheckView};
use crate::output::Output;
use backupd_common::client::{parse_group, parse_user, ClientError};
use backupd_common::protocol::{
    BindingInfo, Expiry, GrantSource, Permission, RevokeTarget, Role, SecurityRequest,
    SecurityResponse, Subject,
};
use clap::Args;

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("subject").required(true).args(["uid", "group"]))]
pub struct GrantArgs {
    /// The role: super-admin, admin, user or viewer.
    #[arg(value_parser = parse_role)]
    pub role: Role,
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// Limit the binding to this repository (repeatable); without it, every repository.
    #[arg(long = "repo", value_name = "NAME", add = clap_complete::ArgValueCompleter::new(crate::completion::repositories))]
    pub repos: Vec<String>,
    /// How long it lasts: a duration such as 90d or 1y, or `never` (super-admin only).
    /// Default: security.binding_expiry (1y).
    #[arg(long, value_name = "DURATION|never", value_parser = parse_expiry)]
    pub expires: Option<Expiry>,
}

#[derive(Debug, Args)]
pub struct SubjectArgs {
    /// The user (name or uid) the binding names.
    #[arg(long, value_name = "USER|UID", value_parser = parse_user)]
    pub uid: Option<u32>,
    /// The group (name or gid) whose members the binding names.
    #[arg(long, value_name = "GROUP|GID", value_parser = parse_group, conflicts_with = "uid")]
    pub group: Option<u32>,
}

impl SubjectArgs {
    fn subject(&self) -> Option<Subject> {
        self.uid
            .map(Subject::Uid)
            .or(self.group.map(Subject::Group))
    }
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("who").args(["uid", "group"]))]
pub struct RevokeArgs {
    /// The binding's id, as `security bindings` lists it.
    #[arg(required_unless_present_any = ["uid", "group"], conflicts_with_all = ["uid", "group"])]
    pub id: Option<String>,
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// With --uid or --group: only bindings of this role.
    #[arg(long, value_parser = parse_role, requires = "who")]
    pub role: Option<Role>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The user (name or uid) asked about.
    #[arg(long, value_name = "USER|UID", value_parser = parse_user)]
    pub uid: u32,
    /// The permission, e.g. backup.own (see docs/SECURITY.md for the list).
    #[arg(value_parser = parse_permission)]
    pub permission: Permission,
    /// Ask about this repository; without it, about requests that name no repository.
    #[arg(long, value_name = "NAME", add = clap_complete::ArgValueCompleter::new(crate::completion::repositories))]
    pub repo: Option<String>,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

fn parse_permission(s: &str) -> Result<Permission, String> {
    s.parse()
}

fn parse_expiry(s: &str) -> Result<Expiry, String> {
    if s == "never" {
        return Ok(Expiry::Never);
    }
    humantime::parse_duration(s)
        .map(Expiry::In)
        .map_err(|e| format!("{e}; give a duration such as 90d or 1y, or `never`"))
}

fn subject_text(s: Subject) -> String {
    match subject_name(s) {
        Some(name) => format!("{s} ({name})"),
        None => s.to_string(),
    }
}

fn scope_text(b: &BindingInfo) -> String {
    if b.repos.is_empty() {
        "all repositories".into()
    } else {
        b.repos.join(",")
    }
}

fn expiry_text(v: &BindingView) -> String {
    match (v.expired, v.expires_in_ms) {
        (true, _) => "expired".into(),
        (false, None) => "never".into(),
        (false, Some(ms)) => {
            let secs = std::time::Duration::from_secs(ms / 1000);
            format!("in {}", humantime::format_duration(secs))
        }
    }
}

fn line(b: &BindingInfo) -> String {
    format!(
        "{}  {}  {}  {}",
        b.id,
        b.role,
        subject_text(b.subject),
        scope_text(b)
    )
}

fn table(list: &[BindingInfo]) -> String {
    if list.is_empty() {
        return "no bindings: root is super-admin, the daemon's uid admin, everyone else has \
                security.default_role"
            .into();
    }
    let mut rows = vec![[
        "ID".to_owned(),
        "ROLE".into(),
        "SUBJECT".into(),
        "SCOPE".into(),
        "EXPIRES".into(),
        "GRANTED BY".into(),
    ]];
    for b in list {
        let v = BindingView::from(b);
        let by = match b.granted_by {
            Some(uid) => subject_text(Subject::Uid(uid)),
            None => "config file".into(),
        };
        rows.push([
            b.id.clone(),
            b.role.to_string(),
            subject_text(b.subject),
            scope_text(b),
            expiry_text(&v),
            by,
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn unexpected(r: SecurityResponse) -> Failure {
    Failure::Client(ClientError::Unexpected(format!("{r:?}")))
}

pub async fn grant(client: &mut Client, a: &GrantArgs, out: &Output) -> Result<ExitCode, Failure> {
    let Some(subject) = a.subject.subject() else {
        return Err(Failure::Usage("give --uid or --group".into()));
    };
    let request = SecurityRequest::Grant {
        role: a.role,
        subject,
        repos: a.repos.clone(),
        expires: a.expires.unwrap_or(Expiry::Default),
    };
    match client.security(request).await? {
        SecurityResponse::Granted(b) => {
            let v = BindingView::from(&b);
            out.value(&v, || {
                format!("granted {}, expires {}", line(&b), expiry_text(&v))
            });
            Ok(ExitCode::Ok)
        }
        other => Err(unexpected(other)),
    }
}

pub async fn revoke(
    client: &mut Client,
    a: &RevokeArgs,
    out: &Output,
) -> Result<ExitCode, Failure> {
    let target = match (&a.id, a.subject.subject()) {
        (Some(id), _) => RevokeTarget::Id(id.clone()),
        (None, Some(subject)) => RevokeTarget::Subject {
            subject,
            role: a.role,
        },
        (None, None) => return Err(Failure::Usage("give an ID, --uid or --group".into())),
    };
    match client.security(SecurityRequest::Revoke(target)).await? {
        SecurityResponse::Revoked(list) => {
            let views: Vec<BindingView> = list.iter().map(BindingView::from).collect();
            out.value(&views, || {
                let lines: Vec<String> = list
                    .iter()
                    .map(|b| format!("revoked {}", line(b)))
                    .collect();
                lines.join("\n")
            });
            Ok(ExitCode::Ok)
        }
        other => Err(unexpected(other)),
    }
}

pub async fn bindings(client: &mut Client, out: &Output) -> Result<ExitCode, Failure> {
    match client.security(SecurityRequest::Bindings).await? {
        SecurityResponse::Bindings(list) => {
            let views: Vec<BindingView> = list.iter().map(BindingView::from).collect();
            out.value(&views, || table(&list));
            Ok(ExitCode::Ok)
        }
        other => Err(unexpected(other)),
    }
}

fn source_text(s: &GrantSource) -> String {
    match s {
        GrantSource::Binding(b) => format!(
            "binding {} ({} for {}{})",
            b.id,
            b.role,
            subject_text(b.subject),
            if b.repos.is_empty() {
                String::new()
            } else {
                format!(" on {}", b.repos.join(", "))
            }
        ),
        other => other.to_string(),
    }
}

/// Exit 0 when granted, 4 when not; changes nothing.
pub async fn check(client: &mut Client, a: &CheckArgs, out: &Output) -> Result<ExitCode, Failure> {
    let request = SecurityRequest::Check {
        uid: a.uid,
        permission: a.permission,
        repo: a.repo.clone(),
    };
    match client.security(request).await? {
        SecurityResponse::Check(c) => {
            out.value(&CheckView::from(&c), || {
                let who = subject_text(Subject::Uid(c.uid));
                let on = c
                    .repo
                    .as_ref()
                    .map(|r| format!(" on {r}"))
                    .unwrap_or_default();
                if c.granted {
                    let by: Vec<String> = c.granted_by.iter().map(source_text).collect();
                    format!(
                        "granted: {who} holds {}{on} by {}",
                        c.permission,
                        by.join(", ")
                    )
                } else {
                    let held: Vec<String> = c.held.iter().map(source_text).collect();
                    let held = if held.is_empty() {
                        "no role".into()
                    } else {
                        held.join(", ")
                    };
                    format!(
                        "not granted: {who} does not hold {}{on} (held: {held}); `backupctl \
                         security grant ROLE --uid {}` gives it a role that has it",
                        c.permission, c.uid
                    )
                }
            });
            Ok(if c.granted {
                ExitCode::Ok
            } else {
                ExitCode::PermissionDenied
            })
        }
        other => Err(unexpected(other)),
    }
}
