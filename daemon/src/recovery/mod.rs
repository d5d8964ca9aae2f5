//! Recovery: everything about getting data back rather than putting it away. This module owns
//! recovery drills (a sample of a snapshot restored into scratch space, verified, measured and
//! deleted), the recovery objectives (RPO achieved against its target, the RTO estimated from
//! the measured restore throughput against its target) and, from the recovery plans work,
//! fitness and recovery plans.
//!
//! Nothing here spawns a task or sees a socket: the `drill` job kind (`ops::drill`) runs a
//! drill on the queue's blocking thread, the scheduler fires drills, and request handlers
//! read the objectives. Everything here is blocking (repositories, sled, files).

pub mod drill;
pub mod drills;
pub mod objectives;
pub mod sample;
pub mod throughput;
