//! `backupctl security audit …`: list, follow and verify the audit log.

use super::Failure;
use crate::client::Client;
use crate::exit::ExitCode;
use crate::output::Output;
use backupd_common::protocol::{AuditEntry, AuditQuery, EventType, Severity, VerifyReport};
use clap::{Args, Subcommand};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `security audit`: without a subcommand, lists entries.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
    /// Only entries at or after this time: RFC 3339 (2026-05-01T12:00:00Z) or an age (`2h`, `7d`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only entries before this time: RFC 3339 or an age (`1h` = an hour ago).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only entries about requests from this uid.
    #[arg(long, value_name = "UID")]
    pub uid: Option<u32>,
    /// Only entries of this event type (auth, denied, config, repo, key, backup, restore,
    /// forget, queue, source, security, alert).
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_event)]
    pub event: Option<EventType>,
    /// Only entries of this severity or higher (debug, info, notice, warning, critical).
    #[arg(long, value_name = "SEVERITY", value_parser = parse_severity)]
    pub severity: Option<Severity>,
    /// Show the newest N matching entries (at most 10000).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub limit: u32,
    /// After the stored entries, keep printing new ones until interrupted.
    #[arg(long)]
    pub follow: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain and checkpoint signatures in sled and in the day files; exit 1 and
    /// name the first entry changed, removed or reordered.
    Verify,
}

fn parse_event(s: &str) -> Result<EventType, String> {
    s.parse()
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse()
}

/// Nanoseconds since the epoch of an RFC 3339 time or of `now - age`.
fn parse_when(flag: &str, text: &str) -> Result<i64, Failure> {
    let when = match humantime::parse_duration(text) {
        Ok(age) => SystemTime::now()
            .checked_sub(age)
            .unwrap_or(UNIX_EPOCH),
        Err(_) => humantime::parse_rfc3339_weak(text).map_err(|e| {
            Failure::Usage(format!(
                "{flag} {text:?}: {e}; use RFC 3339 (2026-05-01T12:00:00Z) or an age such as 2h or 7d"
            ))
        })?,
    };
    Ok(when
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos() as i64)
}

pub async fn run(client: &mut Client, a: &AuditArgs, out: &Output) -> Result<ExitCode, Failure> {
    if let Some(AuditCommand::Verify) = a.command {
        let report = client.audit_verify().await?;
        out.value(&report, || verify_text(&report));
        return Ok(if report.intact() {
            ExitCode::Ok
        } else {
            ExitCode::Warning
        });
    }
    if a.limit > backupd_common::protocol::MAX_QUERY_LIMIT {
        return Err(Failure::Usage(format!(
            "--limit {}: at most {} entries per query; narrow it with --since/--until",
            a.limit,
            backupd_common::protocol::MAX_QUERY_LIMIT
        )));
    }
    let query = AuditQuery {
        since_ns: a
            .since
            .as_deref()
            .map(|t| parse_when("--since", t))
            .transpose()?,
        until_ns: a
            .until
            .as_deref()
            .map(|t| parse_when("--until", t))
            .transpose()?,
        uid: a.uid,
        event: a.event,
        severity: a.severity,
        limit: a.limit,
        follow: a.follow,
    };
    if a.follow {
        if !out.is_json() {
            println!("{}", header());
        }
        client
            .audit_follow(query, |e| out.value(&e, || row(&e)))
            .await?;
        return Ok(ExitCode::Ok);
    }
    let entries = client.audit(query).await?;
    if out.is_json() {
        for e in &entries {
            out.value(e, String::new);
        }
    } else if entries.is_empty() {
        println!("no audit entries match");
    } else {
        println!("{}", header());
        for e in &entries {
            println!("{}", row(e));
        }
    }
    Ok(ExitCode::Ok)
}

fn header() -> String {
    format!(
        "{:>7}  {:<20}  {:>6}  {:<11}  {:<8}  {:<8}  {:<7}  {:<24}  TARGET",
        "SEQ", "TIME", "UID", "ROLE", "TYPE", "SEVERITY", "OUTCOME", "REQUEST"
    )
}

fn row(e: &AuditEntry) -> String {
    let t = &e.target;
    let mut target: Vec<String> = Vec::new();
    if let Some(r) = &t.repo {
        target.push(format!("repo {r}"));
    }
    if let Some(s) = &t.snapshot {
        target.push(format!("snapshot {s}"));
    }
    if let Some(j) = &t.job {
        target.push(format!("job {j}"));
    }
    if let Some(n) = &t.name {
        target.push(n.clone());
    }
    if !t.paths.is_empty() {
        let more = if t.paths_omitted > 0 {
            format!(" (+{} more)", t.paths_omitted)
        } else {
            String::new()
        };
        target.push(format!("{}{more}", t.paths.join(" ")));
    }
    if let Some(m) = &e.message {
        target.push(format!("— {}", m.lines().next().unwrap_or_default()));
    }
    format!(
        "{:>7}  {:<20}  {:>6}  {:<11}  {:<8}  {:<8}  {:<7}  {:<24}  {}",
        e.seq,
        e.time,
        e.uid,
        e.role.as_deref().unwrap_or("none"),
        e.event.as_str(),
        e.severity.as_str(),
        outcome(e),
        e.request,
        target.join(", ")
    )
}

fn outcome(e: &AuditEntry) -> &'static str {
    use backupd_common::protocol::AuditOutcome;
    match e.outcome {
        AuditOutcome::Ok => "ok",
        AuditOutcome::Error => "error",
        AuditOutcome::Denied => "denied",
        AuditOutcome::Cut => "cut",
    }
}

fn verify_text(r: &VerifyReport) -> String {
    let last = r.last_checkpoint.as_ref().map_or_else(
        || "no checkpoint yet".to_owned(),
        |c| format!("last checkpoint at entry {} ({})", c.seq, c.time),
    );
    match &r.problem {
        None => format!(
            "{}{}, chain intact, {last}",
            crate::output::count(r.entries, "entry"),
            match (r.first_seq, r.last_seq) {
                (Some(a), Some(b)) => format!(" ({a}-{b})"),
                _ => String::new(),
            }
        ),
        Some(p) => format!(
            "audit log TAMPERED: entry {} {} ({}): {}\nchecked {} entries; {last}",
            p.seq, p.kind, p.location, p.detail, r.entries
        ),
    }
}
