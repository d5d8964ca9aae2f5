//! What the engine's integration tests share: a fast key derivation and the common prune.
//! Each test binary uses part of it.
#![allow(dead_code)]

use backupd::engine::forget::{forget, ForgetOptions, ForgetReport, Policy};
use backupd::engine::progress::Progress;
use backupd::engine::EngineError;
use backupd::repo::keyfile::Argon2Params;
use backupd::repo::Repository;
use tokio_util::sync::CancellationToken;

/// Argon2 at its minimum cost, so tests do not spend seconds deriving keys.
pub fn kdf() -> Argon2Params {
    Argon2Params {
        m_cost_kib: 1024,
        t_cost: 1,
        p_cost: 1,
        salt: "00112233445566778899aabbccddeeff".into(),
    }
}

/// `forget --keep-last 1 --prune`.
pub fn prune_to_last(repo: &Repository) -> Result<ForgetReport, EngineError> {
    forget(
        repo,
        &ForgetOptions {
            policy: Policy {
                last: 1,
                ..Default::default()
            },
            prune: true,
            dry_run: false,
            zstd_level: 1,
            ..Default::default()
        },
        &Progress::default(),
        &CancellationToken::new(),
    )
}
