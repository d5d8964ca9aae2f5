//! A role binding as stored in tree `bindings` (key: `b/<id>`). Roles and subjects are stored
//! by name, not as the protocol's types, so renaming a wire type never rewrites the database.

use super::{legacy_version, versioned};
use serde::{Deserialize, Serialize};

/// Version 1: the first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingRecord {
    #[serde(default = "legacy_version")]
    pub v: u32,
    pub id: String,
    /// `super-admin`, `admin`, `user`, `viewer`.
    pub role: String,
    /// `uid` or `group`.
    pub subject_kind: String,
    pub subject_id: u32,
    pub repos: Vec<String>,
    /// Unix nanoseconds.
    pub created_ns: i64,
    /// Unix nanoseconds; `None`: never.
    pub expires_ns: Option<i64>,
    pub granted_by: u32,
}

versioned!(BindingRecord, 1);
