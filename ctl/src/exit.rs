//! Exit codes, documented in the README and `backupctl --help`.

use backupd_common::client::ClientError;
use backupd_common::error::ErrorCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum ExitCode {
    Ok = 0,
    /// Finished with warnings or partly (e.g. some files skipped).
    Warning = 1,
    Error = 2,
    /// No daemon answers on the socket.
    Unreachable = 3,
    PermissionDenied = 4,
    /// Bad command line.
    Usage = 64,
    /// Ctrl-C while waiting for a job: the job goes on in the daemon.
    Interrupted = 130,
}

/// The exit code a failed call ends the process with.
pub fn for_error(error: &ClientError) -> ExitCode {
    match error {
        ClientError::Unreachable { .. } => ExitCode::Unreachable,
        ClientError::SocketPermission { .. } | ClientError::UntrustedDaemon { .. } => {
            ExitCode::PermissionDenied
        }
        ClientError::Remote(e) if e.code == ErrorCode::PermissionDenied => {
            ExitCode::PermissionDenied
        }
        ClientError::Remote(_)
        | ClientError::Frame(_)
        | ClientError::Closed
        | ClientError::Unexpected(_) => ExitCode::Error,
    }
}
