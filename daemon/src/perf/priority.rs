//! CPU and I/O priority of one thread: `setpriority(PRIO_PROCESS, tid)` and
//! `ioprio_set(IOPRIO_WHO_PROCESS, tid)` act on the calling thread alone when given its thread
//! id, so the engine's threads for background jobs can yield to the machine's real work
//! without slowing the daemon's socket or a restore someone waits for.
//!
//! A thread's niceness can only go up without CAP_SYS_NICE, so threads are never moved back:
//! the engine keeps one pool per priority (`engine::pool_for`).

use backupd_common::protocol::IoClass;

const IOPRIO_WHO_PROCESS: libc::c_int = 1;
const IOPRIO_CLASS_BE: libc::c_int = 2;
const IOPRIO_CLASS_IDLE: libc::c_int = 3;
const IOPRIO_CLASS_SHIFT: libc::c_int = 13;

/// Sets the calling thread's nice level and I/O class.
pub fn apply_to_this_thread(nice: i32, io: IoClass) -> std::io::Result<()> {
    let tid = nix::unistd::gettid().as_raw();
    set_nice(tid, nice)?;
    let value = match io {
        IoClass::BestEffort(level) => {
            (IOPRIO_CLASS_BE << IOPRIO_CLASS_SHIFT) | libc::c_int::from(level.min(7))
        }
        IoClass::Idle => IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
    };
    set_ioprio(tid, value)
}

/// The calling thread's nice level.
pub fn this_thread_nice() -> std::io::Result<i32> {
    get_nice(nix::unistd::gettid().as_raw())
}

/// The calling thread's I/O priority as the kernel encodes it (class << 13 | level).
pub fn this_thread_ioprio() -> std::io::Result<i32> {
    get_ioprio(nix::unistd::gettid().as_raw())
}

// The workspace denies unsafe code; like `security::fsid`, these are reviewed exceptions for
// system calls without a safe wrapper: each passes integers only.
#[allow(unsafe_code)]
fn set_nice(tid: libc::pid_t, nice: i32) -> std::io::Result<()> {
    // SAFETY: integer arguments, no memory passed.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[allow(unsafe_code)]
fn get_nice(tid: libc::pid_t) -> std::io::Result<i32> {
    // getpriority may return -1 as a valid value: errno tells.
    nix::errno::Errno::clear();
    // SAFETY: integer arguments, no memory passed.
    let v = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) };
    match nix::errno::Errno::last_raw() {
        0 => Ok(v),
        e => Err(std::io::Error::from_raw_os_error(e)),
    }
}

#[allow(unsafe_code)]
fn set_ioprio(tid: libc::pid_t, value: libc::c_int) -> std::io::Result<()> {
    // SAFETY: integer arguments, no memory passed.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, tid, value) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[allow(unsafe_code)]
fn get_ioprio(tid: libc::pid_t) -> std::io::Result<i32> {
    // SAFETY: integer arguments, no memory passed.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, tid) };
    if rc >= 0 {
        Ok(rc as i32)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_of_its_own_gets_the_priority_and_the_caller_keeps_its_own() {
        let before = (
            this_thread_nice().expect("nice"),
            this_thread_ioprio().expect("io"),
        );
        let seen = std::thread::spawn(|| {
            apply_to_this_thread(15, IoClass::Idle).expect("apply");
            (
                this_thread_nice().expect("nice"),
                this_thread_ioprio().expect("io"),
            )
        })
        .join()
        .expect("thread");
        assert_eq!(seen, (15, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT));
        assert_eq!(
            (
                this_thread_nice().expect("nice"),
                this_thread_ioprio().expect("io")
            ),
            before
        );
        let be = std::thread::spawn(|| {
            apply_to_this_thread(19, IoClass::BestEffort(7)).expect("apply");
            this_thread_ioprio().expect("io")
        })
        .join()
        .expect("thread");
        assert_eq!(be, (IOPRIO_CLASS_BE << IOPRIO_CLASS_SHIFT) | 7);
    }
}
