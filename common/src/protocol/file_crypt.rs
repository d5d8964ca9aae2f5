//! `security encrypt` and `security decrypt`: files sealed with a repository's data key to
//! leave the repository (exported reports, key escrow, restore exports). The format is
//! docs/FORMAT.md, "Sealed files".
//!
//! No file content travels in frames. The client opens the input and the output itself, with
//! its own rights, and passes the two descriptors with the request's frame (`SCM_RIGHTS`,
//! docs/PROTOCOL.md, "Passing files"); the daemon streams between them and never opens a path a
//! client names.

use serde::{Deserialize, Serialize};

/// How many descriptors a file request carries: the input, then the output.
pub const FILE_CRYPT_DESCRIPTORS: usize = 2;

/// What `security encrypt|decrypt` asks for. The data comes through the two passed
/// descriptors, never through frames.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCryptRequest {
    /// The repository whose data key seals (or opens) the file; `None`: the default one.
    pub repo: Option<String>,
    /// What the passed input is, as the daemon's kernel names it (`/proc/self/fd`: a path,
    /// `pipe:[N]`, `/dev/pts/3`). Filled in by the daemon when the frame arrives, whatever the
    /// client put there, for the audit log and messages; never opened.
    pub input: Vec<u8>,
    /// The same for the passed output.
    pub output: Vec<u8>,
}

/// What an encryption or decryption did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCryptResult {
    /// The repository whose key was used.
    pub repo: String,
    /// The data-key version that sealed the file (encrypt: the current one).
    pub key_version: u32,
    /// Bytes read from the input.
    pub bytes_in: u64,
    /// Bytes written to the output.
    pub bytes_out: u64,
    /// Chunks of the sealed file (the last one, possibly empty, included).
    pub chunks: u64,
    pub elapsed_ms: u64,
}
