//! What an answered request, a denial or a failed handshake becomes in the log.

use super::classify::{classify, target};
use super::NewEntry;
use crate::security::Outcome;
use backupd_common::protocol::{
    AuditOutcome, EventType, Identity, Request, Response, Role, Severity,
};

/// The entry for `request` as it ended, or `None` when such a request is not recorded.
pub fn request_entry(
    identity: &Identity,
    role: Option<Role>,
    request: &Request,
    outcome: &Outcome<'_>,
) -> Option<NewEntry> {
    let permission = Some(
        crate::security::authorize::needed(request)
            .as_str()
            .to_owned(),
    );
    let mut t = target(request);
    let (event, severity, outcome, error) = match outcome {
        Outcome::Denied(reply) => (
            EventType::Denied,
            Severity::Warning,
            AuditOutcome::Denied,
            Some(*reply),
        ),
        Outcome::Answered(result) => {
            let (event, severity) = classify(request)?;
            match result {
                Ok(response) => {
                    if let Response::Submitted(s) = response {
                        t.job = Some(s.id.to_string());
                    }
                    (event, severity, AuditOutcome::Ok, None)
                }
                Err(reply) => (event, severity, AuditOutcome::Error, Some(reply)),
            }
        }
        Outcome::Cut => {
            let (event, severity) = classify(request)?;
            (event, severity, AuditOutcome::Cut, None)
        }
    };
    Some(NewEntry {
        uid: identity.uid,
        gid: identity.gid,
        pid: identity.pid,
        role,
        permission,
        event,
        severity,
        request: request.name().to_owned(),
        target: t,
        outcome,
        error_code: error.map(|e| e.code.as_str().to_owned()),
        message: error.map(|e| bounded_message(&e.message)),
    })
}

/// The entry for a connection whose handshake failed.
pub fn handshake_entry(identity: &Identity, reason: &str) -> NewEntry {
    NewEntry {
        uid: identity.uid,
        gid: identity.gid,
        pid: identity.pid,
        role: identity.role,
        permission: None,
        event: EventType::Auth,
        severity: Severity::Warning,
        request: "handshake".to_owned(),
        target: Default::default(),
        outcome: AuditOutcome::Error,
        error_code: None,
        message: Some(bounded_message(reason)),
    }
}

/// Messages can quote client input; an entry keeps at most this much of one.
const MAX_MESSAGE_CHARS: usize = 1024;

fn bounded_message(m: &str) -> String {
    m.chars().take(MAX_MESSAGE_CHARS).collect()
}
