//! Human text or `--json` on stdout; errors as one line on stderr (and a JSON object on stdout
//! with `--json`).

pub use backupd_common::plural::{count, count_as};

use crate::commands::Failure;
use crate::exit::{self, ExitCode};
use backupd_common::client::ClientError;
use backupd_common::protocol::{HealthReport, ReloadReport};
use serde::Serialize;
use std::io::Write;

#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether `--json` was given.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints `value` as one JSON line, or the human text `human` builds.
    pub fn value<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
        let mut stdout = std::io::stdout().lock();
        let line = if self.json {
            serde_json::to_string(value).unwrap_or_else(|e| {
                serde_json::json!({"error": {"code": "Internal", "message": e.to_string()}})
                    .to_string()
            })
        } else {
            human()
        };
        // A closed stdout (e.g. `| head`) is not worth a panic.
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    }

    /// Prints `value` as one JSON line with `--json`; nothing otherwise (the human text went to
    /// stderr).
    pub fn json_only<T: Serialize>(&self, value: &T) {
        if self.json {
            self.value(value, String::new);
        }
    }

    /// Reports a failed command and returns its exit code.
    pub fn error(&self, failure: &Failure) -> ExitCode {
        let (code, (kind, message)) = match failure {
            Failure::Client(error) => (exit::for_error(error), describe(error)),
            Failure::Refused(error) => (ExitCode::Usage, describe(error)),
            Failure::Usage(message) => (ExitCode::Usage, ("Usage", message.clone())),
            Failure::Local(message) => (ExitCode::Error, ("Local", message.clone())),
        };
        if self.json {
            let retry_after_ms = match failure {
                Failure::Client(ClientError::Remote(e))
                | Failure::Refused(ClientError::Remote(e)) => e.retry_after_ms,
                _ => None,
            };
            let mut error = serde_json::json!({"code": kind, "message": message});
            if let Some(ms) = retry_after_ms {
                error["retry_after_ms"] = ms.into();
            }
            self.value(&serde_json::json!({ "error": error }), String::new);
        }
        eprintln!("backupctl: {message}");
        code
    }
}

/// A borderless table with a header row, the shape listings print in.
pub fn table(header: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    t.set_header(header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    t
}

fn describe(error: &ClientError) -> (&'static str, String) {
    match error {
        ClientError::Unreachable { path, source } => (
            "Unreachable",
            format!(
                "no backupd answers on {} ({source}); start it with `backupd` (or `systemctl \
                 start backupd`), or point --socket / BACKUPD_SOCKET at its socket",
                path.display()
            ),
        ),
        ClientError::SocketPermission { path, source } => (
            "PermissionDenied",
            format!(
                "cannot open {} ({source}); ask an administrator to add you to the socket's \
                 group (usually `backupd`)",
                path.display()
            ),
        ),
        ClientError::UntrustedDaemon { .. } => ("PermissionDenied", error.to_string()),
        ClientError::Remote(e) => (e.code.as_str(), e.message.clone()),
        other => ("Internal", other.to_string()),
    }
}

fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m"),
    }
}

fn lower<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub fn health_table(h: &HealthReport) -> String {
    let mut rows = vec![
        ("status", lower(&h.status)),
        (
            "version",
            format!("{} (protocol {})", h.version, h.protocol_version),
        ),
        ("uptime", human_duration(h.uptime_secs)),
        ("pid", h.pid.to_string()),
        ("mode", lower(&h.mode)),
        (
            "socket",
            if h.socket_activated {
                format!("{} (socket-activated)", h.socket)
            } else {
                h.socket.clone()
            },
        ),
        ("state dir", h.state_dir.clone()),
        (
            "config",
            h.config_file
                .clone()
                .unwrap_or_else(|| "embedded defaults".to_owned()),
        ),
        ("connections", h.connections.to_string()),
        (
            "score",
            format!("{} ({})", h.score.score, h.score.level.as_str()),
        ),
    ];
    for f in &h.score.factors {
        rows.push(("  -", format!("{} -{}: {}", f.name, f.penalty, f.detail)));
    }
    for note in &h.notes {
        rows.push(("note", note.clone()));
    }
    for s in &h.sources {
        rows.push(("source", source_health(s)));
    }
    for r in &h.repositories {
        rows.push(("repository", repo_maintenance(r)));
    }
    rows.iter()
        .map(|(k, v)| format!("{:<12} {v}", format!("{k}:")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn when(ns: Option<i64>) -> String {
    ns.map(crate::commands::queue::time)
        .unwrap_or_else(|| "never".to_owned())
}

fn timer(name: &str, t: &backupd_common::protocol::TimerState) -> String {
    let Some(schedule) = &t.schedule else {
        return format!("{name} off");
    };
    let mut text = format!(
        "{name} {schedule}: last {}{}, next {}",
        when(t.last_run_ns),
        t.last_outcome
            .as_ref()
            .map(|o| format!(" ({o})"))
            .unwrap_or_else(|| if t.last_job.is_some() {
                " (running)".into()
            } else {
                String::new()
            }),
        when(t.next_run_ns)
    );
    if t.overdue {
        text.push_str(", OVERDUE");
    }
    if let Some(e) = &t.last_error {
        text.push_str(&format!(" [{e}]"));
    }
    text
}

fn source_health(s: &backupd_common::protocol::SourceHealth) -> String {
    let mut text = format!(
        "{}: last success {}, last failure {}, next run {}, {} snapshots, {} RPO {}",
        s.name,
        when(s.last_success_ns),
        when(s.last_failure_ns),
        s.next_run_ns
            .map(crate::commands::queue::time)
            .unwrap_or_else(|| "on change".to_owned()),
        s.snapshots
            .map(|n| n.to_string())
            .unwrap_or_else(|| "?".into()),
        if s.within_rpo { "within" } else { "PAST" },
        human_duration(s.rpo_ms / 1000)
    );
    text.push_str(&format!(
        "\n{:<12}   {}",
        "",
        timer("retention", &s.retention)
    ));
    text
}

fn repo_maintenance(r: &backupd_common::protocol::RepoMaintenance) -> String {
    let pad = format!("\n{:<12}   ", "");
    format!(
        "{}{pad}{}{pad}{}{pad}{} (next subset {}/{})",
        r.name,
        timer("prune", &r.prune),
        timer("check", &r.check),
        timer("read-data", &r.read_data),
        r.read_data_next.0,
        r.read_data_next.1
    )
}

pub fn health_line(h: &HealthReport) -> String {
    format!(
        "{} score {} up {} pid {} connections {}",
        lower(&h.status),
        h.score.score,
        human_duration(h.uptime_secs),
        h.pid,
        h.connections
    )
}

pub fn reload_text(r: &ReloadReport) -> String {
    let source = r.config_file.as_deref().unwrap_or("embedded defaults");
    let mut text = format!("reloaded from {source}");
    let list = |keys: &[String]| {
        if keys.is_empty() {
            "none".to_owned()
        } else {
            keys.join(", ")
        }
    };
    text.push_str(&format!("\napplied: {}", list(&r.applied)));
    if !r.restart_required.is_empty() {
        text.push_str(&format!(
            "\nneed a restart to take effect: {}",
            list(&r.restart_required)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(65), "1m 5s");
        assert_eq!(human_duration(3_725), "1h 2m 5s");
        assert_eq!(human_duration(90_000), "1d 1h 0m");
    }
}
