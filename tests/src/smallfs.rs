//! Small tmpfs mounts for full-disk and read-only file system tests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a given size mounted on a directory, unmounted on drop (needs root; CI runs
/// tests as root). For full-disk and read-only file system tests.
pub struct SmallFs {
    pub path: PathBuf,
}

impl SmallFs {
    pub fn mount(path: &Path, size: &str) -> Self {
        std::fs::create_dir_all(path).expect("mkdir mount point");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(
            st.success(),
            "mount tmpfs on {} (needs root)",
            path.display()
        );
        Self {
            path: path.to_owned(),
        }
    }

    /// Bytes free on the file system.
    pub fn free(&self) -> u64 {
        let v = nix::sys::statvfs::statvfs(&self.path).expect("statvfs");
        v.blocks_available() as u64 * v.fragment_size() as u64
    }

    /// Writes `name` until the file system is full (or `max` bytes are written).
    pub fn fill(&self, name: &str, max: u64) {
        let mut f = std::fs::File::create(self.path.join(name)).expect("create filler");
        let block = vec![0xA5u8; 64 * 1024];
        let mut written = 0;
        while written < max {
            let n = block.len().min((max - written) as usize);
            if f.write_all(&block[..n]).is_err() {
                break;
            }
            written += n as u64;
        }
    }

    pub fn remount(&self, options: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.path)
            .status()
            .expect("run mount");
        assert!(st.success(), "remount {} {options}", self.path.display());
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        // Lazy: a daemon killed a moment ago may still have a directory open there.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
