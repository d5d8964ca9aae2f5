//! Descriptors a client passes with a request (`SCM_RIGHTS`, docs/PROTOCOL.md, "Passing
//! files"). Only requests whose [`Request::descriptors`] is not zero take any; what comes with
//! another request is closed before it is even checked. The daemon names what it received by
//! what its kernel says (`/proc/self/fd`), never by what the client claims, so the audit log
//! records the file that was really read or written.
//!
//! A passed descriptor carries the access its opener had: the daemon, root or not, can do with
//! it only what the client could, and it never opens a path a client names.

use super::frames::Passed;
use backupd_common::protocol::{Request, SecurityRequest};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

/// The request with its descriptors: names filled in for a file request, nothing for others.
pub fn accept(mut request: Request, passed: Passed) -> (Request, Passed) {
    if request.descriptors() == 0 {
        if !passed.is_empty() {
            tracing::debug!(
                request = request.name(),
                count = passed.fds.len(),
                "closing descriptors passed with a request that takes none"
            );
        }
        return (request, Passed::default());
    }
    if let Request::Security(SecurityRequest::Encrypt(r) | SecurityRequest::Decrypt(r)) =
        &mut request
    {
        r.input = passed.fds.first().map(name_of).unwrap_or_default();
        r.output = passed.fds.get(1).map(name_of).unwrap_or_default();
    }
    (request, passed)
}

/// What the kernel calls an open file: its path (with ` (deleted)` once unlinked), or
/// `pipe:[N]`, `socket:[N]`, `anon_inode:...`.
pub fn name_of(fd: &OwnedFd) -> Vec<u8> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map(|p| p.into_os_string().into_vec())
        .unwrap_or_else(|_| format!("descriptor {}", fd.as_raw_fd()).into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use backupd_common::protocol::{FileCryptRequest, SystemRequest};

    #[test]
    fn names_come_from_the_kernel_not_the_client() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("real.txt");
        std::fs::write(&path, b"x").expect("write");
        let input = OwnedFd::from(std::fs::File::open(&path).expect("open"));
        let (r, w) = std::os::unix::net::UnixStream::pair().expect("socket pair");
        let request = Request::Security(SecurityRequest::Encrypt(FileCryptRequest {
            repo: None,
            input: b"/etc/shadow".to_vec(),
            output: b"/claimed".to_vec(),
        }));
        let passed = Passed {
            fds: vec![input, OwnedFd::from(w)],
            overflow: false,
        };
        let (request, passed) = accept(request, passed);
        drop(r);
        let Request::Security(SecurityRequest::Encrypt(r)) = request else {
            panic!("same request");
        };
        assert_eq!(r.input, path.as_os_str().as_encoded_bytes());
        assert!(r.output.starts_with(b"socket:["), "{:?}", r.output);
        assert_eq!(passed.fds.len(), 2);
    }

    #[test]
    fn descriptors_with_other_requests_are_dropped() {
        let (r, _w) = std::os::unix::net::UnixStream::pair().expect("socket pair");
        let passed = Passed {
            fds: vec![OwnedFd::from(r)],
            overflow: false,
        };
        let (_, kept) = accept(Request::System(SystemRequest::Health), passed);
        assert!(kept.is_empty());
    }
}
