//! `--json` of `security encrypt` and `security decrypt` (docs/JSON.md, "security encrypt").

use backupd_common::protocol::FileCryptResult;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct FileCryptView {
    pub repo: String,
    pub key_version: u32,
    /// IN as given (`-`: standard input).
    pub input: String,
    /// OUT as given.
    pub output: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub chunks: u64,
    pub elapsed_ms: u64,
}

impl FileCryptView {
    pub fn new(r: &FileCryptResult, input: &[u8], output: &[u8]) -> Self {
        Self {
            repo: r.repo.clone(),
            key_version: r.key_version,
            input: super::path(input),
            output: super::path(output),
            bytes_in: r.bytes_in,
            bytes_out: r.bytes_out,
            chunks: r.chunks,
            elapsed_ms: r.elapsed_ms,
        }
    }
}
