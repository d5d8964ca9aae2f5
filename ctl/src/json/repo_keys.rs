//! `--json` of `repo key rotate|list|remove` (docs/JSON.md, "repo key").

use backupd_common::protocol::{KeyListing, KeyRemoval, KeyRotation};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct KeyRotationView {
    pub name: String,
    pub previous_version: u32,
    pub version: u32,
    pub generation: u64,
    pub key_files_written: Vec<String>,
    pub key_files_removed: Vec<String>,
    pub key_files_kept_v1: Vec<String>,
}

impl From<&KeyRotation> for KeyRotationView {
    fn from(k: &KeyRotation) -> Self {
        Self {
            name: k.name.clone(),
            previous_version: k.previous,
            version: k.version,
            generation: k.generation,
            key_files_written: k.written.clone(),
            key_files_removed: k.removed.clone(),
            key_files_kept_v1: k.kept_v1.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct KeyVersionView {
    pub version: u32,
    pub created: String,
    pub current: bool,
    pub retired: bool,
    pub packs: u64,
}

#[derive(Debug, Serialize)]
pub struct KeyFileView {
    pub id: String,
    pub name: String,
    pub format_version: u32,
    pub created: String,
    pub host: String,
    pub generation: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct KeyListingView {
    pub name: String,
    pub current: u32,
    pub generation: u64,
    pub versions: Vec<KeyVersionView>,
    pub key_files: Vec<KeyFileView>,
    pub unreadable_packs: Vec<String>,
}

/// The shortest prefix `repo key list` prints for a key file (`repo key remove` takes it).
pub fn key_id(name: &str) -> String {
    name.chars().take(12).collect()
}

impl From<&KeyListing> for KeyListingView {
    fn from(k: &KeyListing) -> Self {
        Self {
            name: k.name.clone(),
            current: k.current,
            generation: k.generation,
            versions: k
                .versions
                .iter()
                .map(|v| KeyVersionView {
                    version: v.version,
                    created: v.created.clone(),
                    current: v.current,
                    retired: v.retired,
                    packs: v.packs,
                })
                .collect(),
            key_files: k
                .key_files
                .iter()
                .map(|f| KeyFileView {
                    id: key_id(&f.name),
                    name: f.name.clone(),
                    format_version: f.version,
                    created: f.created.clone(),
                    host: f.host.clone(),
                    generation: f.generation,
                })
                .collect(),
            unreadable_packs: k.unreadable_packs.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct KeyRemovalView {
    pub name: String,
    pub removed: Vec<String>,
    pub key_files: u64,
}

impl From<&KeyRemoval> for KeyRemovalView {
    fn from(k: &KeyRemoval) -> Self {
        Self {
            name: k.name.clone(),
            removed: k.removed.clone(),
            key_files: k.key_files,
        }
    }
}
