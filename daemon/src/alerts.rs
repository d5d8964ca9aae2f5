//! Conditions an administrator must act on (a state database that was replaced, a repository
//! that vanished), kept so that `system health` reports them as `degraded` with one note each
//! until they are resolved or the daemon restarts. Each alert is also logged at error level by
//! whoever raises it. Keyed, so the code that resolves a condition can clear its alert.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Alerts {
    active: Mutex<BTreeMap<String, String>>,
}

impl Alerts {
    /// Raises (or replaces) the alert under `key`; true unless the same alert was already up,
    /// so the caller logs it once.
    pub fn raise(&self, key: &str, message: String) -> bool {
        self.lock().insert(key.to_owned(), message.clone()) != Some(message)
    }

    pub fn clear(&self, key: &str) {
        self.lock().remove(key);
    }

    /// The messages, in key order.
    pub fn notes(&self) -> Vec<String> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        // A panic while holding this lock cannot leave the map half-changed.
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_are_listed_until_cleared() {
        let alerts = Alerts::default();
        assert!(alerts.raise("repo:b", "b is gone".into()));
        assert!(
            !alerts.raise("repo:b", "b is gone".into()),
            "same alert again"
        );
        assert!(alerts.raise("state", "state replaced".into()));
        assert!(alerts.raise("repo:b", "b is still gone".into()));
        assert_eq!(alerts.notes(), vec!["b is still gone", "state replaced"]);
        alerts.clear("repo:b");
        assert_eq!(alerts.notes(), vec!["state replaced"]);
    }
}
