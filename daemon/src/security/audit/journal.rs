//! Sends each audit entry to the systemd journal, with structured fields (`AUDIT_SEQ`,
//! `AUDIT_UID`, `AUDIT_TYPE`, `AUDIT_OUTCOME`, `AUDIT_REQUEST`, `AUDIT_HASH`, `PRIORITY` from
//! the severity, `MESSAGE`), when the daemon runs under systemd. Speaks the journal's native
//! protocol directly: one datagram of `KEY=value` lines to `/run/systemd/journal/socket`
//! (values with a newline in the length-prefixed form). The socket is non-blocking: a journal
//! that cannot keep up loses entries there, never delays a request; the log's own stores are
//! the record.

use backupd_common::protocol::{AuditEntry, Severity};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

pub struct Journal {
    target: Option<(UnixDatagram, PathBuf)>,
}

impl Journal {
    /// The journal if `wanted`, the daemon runs under systemd (`INVOCATION_ID` or
    /// `JOURNAL_STREAM` set) and its socket exists; otherwise a journal that drops everything.
    pub fn detect(wanted: bool) -> Self {
        let under_systemd = std::env::var_os("INVOCATION_ID").is_some()
            || std::env::var_os("JOURNAL_STREAM").is_some();
        let socket = Path::new(JOURNAL_SOCKET);
        if !wanted || !under_systemd || !socket.exists() {
            tracing::debug!(
                wanted,
                under_systemd,
                "audit entries are not sent to the journal"
            );
            return Self { target: None };
        }
        Self::at(socket)
    }

    /// A journal listening on `socket` (tests bind their own).
    pub fn at(socket: &Path) -> Self {
        let target = UnixDatagram::unbound()
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| tracing::debug!(error = %e, "no datagram socket for the journal"))
            .ok()
            .map(|s| (s, socket.to_owned()));
        Self { target }
    }

    pub fn send(&self, e: &AuditEntry) {
        let Some((socket, path)) = &self.target else {
            return;
        };
        if let Err(err) = socket.send_to(&datagram(e), path) {
            tracing::debug!(error = %err, seq = e.seq, "audit entry not sent to the journal");
        }
    }
}

fn priority(s: Severity) -> u8 {
    match s {
        Severity::Debug => 7,
        Severity::Info => 6,
        Severity::Notice => 5,
        Severity::Warning => 4,
        Severity::Critical => 2,
    }
}

fn datagram(e: &AuditEntry) -> Vec<u8> {
    let role = e.role.as_deref().unwrap_or("none");
    let outcome = serde_json::to_value(e.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut message = format!(
        "audit {}: uid {} ({role}) {} -> {outcome}",
        e.seq, e.uid, e.request
    );
    if let Some(m) = &e.message {
        message.push_str(": ");
        message.push_str(m);
    }
    let fields: [(&str, String); 11] = [
        ("MESSAGE", message),
        ("PRIORITY", priority(e.severity).to_string()),
        ("SYSLOG_IDENTIFIER", "backupd-audit".to_owned()),
        ("AUDIT_SEQ", e.seq.to_string()),
        ("AUDIT_UID", e.uid.to_string()),
        ("AUDIT_GID", e.gid.to_string()),
        ("AUDIT_TYPE", e.event.as_str().to_owned()),
        ("AUDIT_SEVERITY", e.severity.as_str().to_owned()),
        ("AUDIT_OUTCOME", outcome),
        ("AUDIT_REQUEST", e.request.clone()),
        ("AUDIT_HASH", e.hash.clone()),
    ];
    let mut out = Vec::new();
    for (key, value) in fields {
        out.extend_from_slice(key.as_bytes());
        if value.contains('\n') {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
            out.extend_from_slice(value.as_bytes());
        } else {
            out.push(b'=');
            out.extend_from_slice(value.as_bytes());
        }
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use backupd_common::protocol::{AuditOutcome, AuditTarget, EventType};

    #[test]
    fn an_entry_reaches_the_journal_socket_with_structured_fields() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal.sock");
        let listener = UnixDatagram::bind(&path).expect("bind");
        let entry = AuditEntry {
            seq: 9,
            time: "2026-01-01T00:00:00Z".into(),
            time_ns: 0,
            uid: 1000,
            gid: 1000,
            pid: None,
            role: Some("user".into()),
            permission: None,
            event: EventType::Denied,
            severity: Severity::Warning,
            request: "repo key export".into(),
            target: AuditTarget::default(),
            outcome: AuditOutcome::Denied,
            error_code: None,
            message: Some("two\nlines".into()),
            prev: String::new(),
            hash: "ab".into(),
        };
        Journal::at(&path).send(&entry);
        let mut buf = vec![0u8; 4096];
        let n = listener.recv(&mut buf).expect("a datagram");
        let text = String::from_utf8_lossy(&buf[..n]);
        for field in [
            "AUDIT_SEQ=9\n",
            "AUDIT_UID=1000\n",
            "AUDIT_TYPE=denied\n",
            "PRIORITY=4\n",
        ] {
            assert!(text.contains(field), "{field} missing in {text:?}");
        }
        // A multi-line MESSAGE travels length-prefixed.
        assert!(buf[..n].starts_with(b"MESSAGE\n"), "{text:?}");
        assert!(Journal::detect(false).target.is_none());
    }
}
