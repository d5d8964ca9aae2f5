//! `system ...`: health, identity, reload, import.

use backupd_common::protocol::{
    HealthReport, HealthStatus, Identity, ImportItem, ImportReport, ReloadReport, RunMode,
};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct HealthView {
    /// `ok`, `degraded` (see `notes`) or `stopping`.
    pub status: &'static str,
    pub version: String,
    pub protocol_version: u32,
    pub uptime_ms: u64,
    pub pid: u32,
    /// `system` or `user`.
    pub mode: &'static str,
    pub socket: String,
    pub socket_activated: bool,
    pub state_dir: String,
    pub config_file: Option<String>,
    pub connections: u32,
    pub notes: Vec<String>,
}

impl From<&HealthReport> for HealthView {
    fn from(h: &HealthReport) -> Self {
        Self {
            status: match h.status {
                HealthStatus::Ok => "ok",
                HealthStatus::Degraded => "degraded",
                HealthStatus::Stopping => "stopping",
            },
            version: h.version.clone(),
            protocol_version: h.protocol_version,
            uptime_ms: h.uptime_secs.saturating_mul(1000),
            pid: h.pid,
            mode: match h.mode {
                RunMode::System => "system",
                RunMode::User => "user",
            },
            socket: h.socket.clone(),
            socket_activated: h.socket_activated,
            state_dir: h.state_dir.clone(),
            config_file: h.config_file.clone(),
            connections: h.connections,
            notes: h.notes.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct IdentityView {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    pub role: &'static str,
}

impl From<&Identity> for IdentityView {
    fn from(i: &Identity) -> Self {
        Self {
            uid: i.uid,
            gid: i.gid,
            pid: i.pid,
            role: i.role.map_or("none", |r| r.as_str()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ReloadView {
    pub config_file: Option<String>,
    pub applied: Vec<String>,
    pub restart_required: Vec<String>,
}

impl From<&ReloadReport> for ReloadView {
    fn from(r: &ReloadReport) -> Self {
        Self {
            config_file: r.config_file.clone(),
            applied: r.applied.clone(),
            restart_required: r.restart_required.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ImportItemView {
    pub kind: String,
    pub name: String,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ImportView {
    pub added: Vec<ImportItemView>,
    pub skipped: Vec<ImportItemView>,
}

impl From<&ImportReport> for ImportView {
    fn from(r: &ImportReport) -> Self {
        let items = |list: &[ImportItem]| {
            list.iter()
                .map(|i| ImportItemView {
                    kind: i.kind.clone(),
                    name: i.name.clone(),
                    reason: i.reason.clone(),
                })
                .collect()
        };
        Self {
            added: items(&r.added),
            skipped: items(&r.skipped),
        }
    }
}
