//! Connection slots: who may hold how many connections. Decided at accept time from the peer's
//! uid (SO_PEERCRED), before a byte is read:
//!
//! - everyone together: at most `server.max_connections`;
//! - non-admin uids together: at most `max_connections - admin_reserved_connections`, so root
//!   and the daemon's own uid can always get in;
//! - one non-admin uid: at most `server.max_connections_per_uid`.
//!
//! A [`Slot`] is released when dropped, i.e. when its connection task ends. The limits are read
//! from the configuration at each acquisition, so a reload applies to the next connection.

use backupd_common::config::ServerConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    non_admin: usize,
    per_uid: HashMap<u32, usize>,
}

/// Live connection counts, shared by the accept loop and every connection's [`Slot`].
#[derive(Debug, Default)]
pub struct Slots {
    counts: Mutex<Counts>,
}

/// Why a connection is refused; the message names the limit and its config key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "backupd is serving its maximum of {max} connections (server.max_connections); try \
         again shortly"
    )]
    Total { max: usize },
    #[error(
        "backupd is serving its maximum of {max} connections for non-admin users \
         (server.max_connections minus server.admin_reserved_connections); try again shortly"
    )]
    NonAdmin { max: usize },
    #[error(
        "uid {uid} already holds {max} connections to backupd \
         (server.max_connections_per_uid); close some (e.g. `events --follow` or \
         `system health --watch` left running) and try again"
    )]
    PerUid { uid: u32, max: usize },
}

impl Slots {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        // The counts are plain integers updated in one step each; a panic elsewhere while the
        // lock was held cannot leave them half-written.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot for a connection from `uid`, or says which limit is reached.
    pub fn try_acquire(
        self: &Arc<Self>,
        uid: u32,
        admin: bool,
        limits: &ServerConfig,
    ) -> Result<Slot, Refusal> {
        let mut c = self.lock();
        if c.total >= limits.max_connections {
            return Err(Refusal::Total {
                max: limits.max_connections,
            });
        }
        if !admin {
            let max = limits.non_admin_connections();
            if c.non_admin >= max {
                return Err(Refusal::NonAdmin { max });
            }
            let mine = c.per_uid.get(&uid).copied().unwrap_or(0);
            if mine >= limits.max_connections_per_uid {
                return Err(Refusal::PerUid {
                    uid,
                    max: limits.max_connections_per_uid,
                });
            }
            c.non_admin += 1;
            c.per_uid.insert(uid, mine + 1);
        }
        c.total += 1;
        Ok(Slot {
            slots: self.clone(),
            uid: (!admin).then_some(uid),
        })
    }

    /// Connections being served right now.
    pub fn live(&self) -> usize {
        self.lock().total
    }

    /// Connections held by non-admin uids right now.
    pub fn live_non_admin(&self) -> usize {
        self.lock().non_admin
    }
}

/// One connection's place under the caps; released on drop.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    /// The non-admin uid it counts against, if any.
    uid: Option<u32>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.slots.lock();
        c.total = c.total.saturating_sub(1);
        if let Some(uid) = self.uid {
            c.non_admin = c.non_admin.saturating_sub(1);
            if let Some(n) = c.per_uid.get_mut(&uid) {
                *n -= 1;
                if *n == 0 {
                    c.per_uid.remove(&uid);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, reserved: usize, per_uid: usize) -> ServerConfig {
        ServerConfig {
            max_connections: max,
            admin_reserved_connections: reserved,
            max_connections_per_uid: per_uid,
            ..ServerConfig::default()
        }
    }

    #[test]
    fn one_uid_is_capped_and_its_slots_come_back() {
        let slots = Arc::new(Slots::default());
        let l = limits(100, 10, 3);
        let held: Vec<Slot> = (0..3)
            .map(|_| slots.try_acquire(65534, false, &l).expect("under the cap"))
            .collect();
        assert_eq!(
            slots.try_acquire(65534, false, &l).expect_err("capped"),
            Refusal::PerUid { uid: 65534, max: 3 }
        );
        // Another uid is not affected.
        let other = slots.try_acquire(1000, false, &l).expect("other uid");
        drop(held);
        drop(other);
        assert_eq!(slots.live(), 0);
        assert_eq!(slots.live_non_admin(), 0);
        assert!(slots.try_acquire(65534, false, &l).is_ok());
    }

    #[test]
    fn admins_get_in_when_non_admins_fill_their_share() {
        let slots = Arc::new(Slots::default());
        let l = limits(6, 2, 100);
        let _non_admins: Vec<Slot> = (0..4)
            .map(|i| slots.try_acquire(1000 + i, false, &l).expect("share"))
            .collect();
        assert_eq!(
            slots.try_acquire(2000, false, &l).expect_err("share full"),
            Refusal::NonAdmin { max: 4 }
        );
        let _a = slots.try_acquire(0, true, &l).expect("reserved slot");
        let _b = slots.try_acquire(0, true, &l).expect("reserved slot");
        assert_eq!(
            slots.try_acquire(0, true, &l).expect_err("total"),
            Refusal::Total { max: 6 }
        );
    }

    #[test]
    fn the_reserve_is_at_most_half_of_a_small_cap() {
        let slots = Arc::new(Slots::default());
        let l = limits(4, 16, 100);
        let _held: Vec<Slot> = (0..2)
            .map(|i| slots.try_acquire(1000 + i, false, &l).expect("half"))
            .collect();
        assert!(slots.try_acquire(1002, false, &l).is_err());
    }
}
