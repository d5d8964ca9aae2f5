//! Automatic data-key rotation and re-encryption: `[security] key_rotation` and
//! `key_reencrypt_after` ("0", the default, turns each off). A service on the task tracker
//! checks every registered repository at start and every hour: it rotates one whose current
//! data-key version is older than `key_rotation` (`Registry::key_rotate`, the same path as
//! `backupctl repo key rotate`), and queues a low-priority `repo key reencrypt` job for one
//! whose current version is older than `key_reencrypt_after` while an older version still has
//! key material (the job coalesces with one already queued). Each rotation, queued job and
//! failure is logged and written to the audit log as a `key` event of the daemon's uid. Stops when its token is cancelled; a round in progress finishes on its blocking thread
//! (the rotation itself gives up waiting for the repository's lock on cancellation).

use crate::context::SettingsHandle;
use crate::queue::Queue;
use crate::repo::registry::Registry;
use crate::security::audit::{Audit, NewEntry};
use backupd_common::protocol::{
    AuditOutcome, AuditTarget, EventType, JobKind, JobOptions, JobSpec, Priority, ReencryptRequest,
    Severity,
};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the ages are checked.
pub const CHECK_EVERY: Duration = Duration::from_secs(3600);

/// Whether a current key created at `created_ns` is due at `now_ns` under `policy` (zero: off).
pub fn due(created_ns: i64, now_ns: i64, policy: Duration) -> bool {
    !policy.is_zero() && now_ns.saturating_sub(created_ns) > policy.as_nanos() as i64
}

pub struct KeyRotation {
    pub repos: Arc<Registry>,
    pub queue: Arc<Queue>,
    pub audit: Arc<Audit>,
    pub settings: SettingsHandle,
    pub daemon_uid: u32,
}

impl KeyRotation {
    pub async fn run(self, cancel: CancellationToken) {
        let this = Arc::new(self);
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let security = this.settings.get().config.security.clone();
            let (policy, reencrypt_after) = (security.key_rotation, security.key_reencrypt_after);
            if policy.is_zero() && reencrypt_after.is_zero() {
                continue;
            }
            let (round, token) = (this.clone(), cancel.clone());
            let due = tokio::task::spawn_blocking(move || {
                if !policy.is_zero() {
                    round.round(policy, &token);
                }
                round.reencryption_due(reencrypt_after)
            })
            .await;
            match due {
                Ok(names) => this.queue_reencryptions(names, reencrypt_after).await,
                Err(e) => {
                    tracing::warn!(error = %e, "the key rotation check failed; trying again in an hour")
                }
            }
        }
    }

    /// The repositories whose current data key is older than `after` while an older version
    /// still has key material. Blocking.
    fn reencryption_due(&self, after: Duration) -> Vec<String> {
        if after.is_zero() {
            return Vec::new();
        }
        let Ok(entries) = self.repos.list() else {
            return Vec::new();
        };
        let now = crate::repo::now_ns();
        entries
            .into_iter()
            .filter(|entry| {
                let Ok((_, _, loaded)) = self.repos.key_files(Some(&entry.name)) else {
                    return false;
                };
                let ring = &loaded.ring;
                let old_material = ring
                    .versions
                    .iter()
                    .any(|v| v.version != ring.current && v.key.is_some());
                old_material
                    && ring
                        .current_key()
                        .is_some_and(|k| due(k.created_ns, now, after))
            })
            .map(|entry| entry.name)
            .collect()
    }

    async fn queue_reencryptions(&self, names: Vec<String>, after: Duration) {
        let q = self.settings.get().config.queue.clone();
        for name in names {
            let spec = JobSpec {
                kind: JobKind::Reencrypt(ReencryptRequest {
                    repo: Some(name.clone()),
                    ..Default::default()
                }),
                options: JobOptions {
                    priority: Priority::Low,
                    ..Default::default()
                },
            };
            let (outcome, message) = match self
                .queue
                .submit_internal(spec, self.daemon_uid, &q)
                .await
            {
                Ok(s) if s.coalesced => continue,
                Ok(s) => {
                    tracing::info!(repo = %name, job = s.id, "re-encryption queued (security.key_reencrypt_after)");
                    (
                        AuditOutcome::Ok,
                        format!(
                            "re-encryption queued as job {} (security.key_reencrypt_after {})",
                            s.id,
                            humantime::format_duration(after)
                        ),
                    )
                }
                Err(e) => {
                    tracing::warn!(repo = %name, error = %e, "cannot queue the re-encryption; trying again in an hour");
                    (
                        AuditOutcome::Error,
                        format!("queuing the re-encryption failed: {e}"),
                    )
                }
            };
            self.record(&name, "repo key reencrypt", outcome, message);
        }
    }

    /// Rotates every repository whose current key is due. Blocking.
    fn round(&self, policy: Duration, cancel: &CancellationToken) {
        let entries = match self.repos.list() {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "key rotation: cannot list repositories");
                return;
            }
        };
        for entry in entries {
            if cancel.is_cancelled() {
                return;
            }
            let created = match self.repos.key_files(Some(&entry.name)) {
                Ok((_, _, loaded)) => loaded.ring.current_key().map(|k| k.created_ns),
                Err(e) => {
                    tracing::debug!(repo = %entry.name, error = %e, "key rotation: repository not checked");
                    continue;
                }
            };
            let now = crate::repo::now_ns();
            if !created.is_some_and(|c| due(c, now, policy)) {
                continue;
            }
            let (outcome, message) = match self.repos.key_rotate(Some(&entry.name), cancel) {
                Ok(o) => {
                    tracing::info!(repo = %entry.name, version = o.version, "data key rotated automatically (security.key_rotation)");
                    (
                        AuditOutcome::Ok,
                        format!(
                            "automatic rotation (security.key_rotation {}): version {} is current, was {}",
                            humantime::format_duration(policy),
                            o.version,
                            o.previous
                        ),
                    )
                }
                Err(e) => {
                    tracing::warn!(repo = %entry.name, error = %e, "automatic key rotation failed; trying again in an hour");
                    (
                        AuditOutcome::Error,
                        format!("automatic rotation failed: {e}"),
                    )
                }
            };
            self.record(&entry.name, "repo key rotate", outcome, message);
        }
    }

    fn record(&self, repo: &str, request: &str, outcome: AuditOutcome, message: String) {
        let entry = NewEntry {
            uid: self.daemon_uid,
            gid: 0,
            pid: Some(std::process::id() as i32),
            role: None,
            permission: None,
            event: EventType::Key,
            severity: Severity::Warning,
            request: request.into(),
            target: AuditTarget {
                repo: Some(repo.to_owned()),
                ..Default::default()
            },
            error_code: (outcome == AuditOutcome::Error).then(|| "Internal".to_owned()),
            outcome,
            message: Some(message),
        };
        if let Err(e) = self.audit.append(entry) {
            tracing::warn!(repo, error = %e, "cannot write the key rotation to the audit log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_due_only_past_the_policy_and_never_when_it_is_off() {
        let day = 86_400 * 1_000_000_000i64;
        let ninety = Duration::from_secs(90 * 86_400);
        assert!(!due(0, 90 * day, ninety));
        assert!(due(0, 90 * day + 1, ninety));
        assert!(!due(0, 10_000 * day, Duration::ZERO));
    }
}
