//! `[hooks]` and a `[[source]]`'s `hooks`: commands the daemon runs around jobs. Each command is
//! an argv array run without a shell, so its first element must be an absolute path (no PATH
//! lookup decides what runs with the daemon's rights). Hooks exist only in the config file:
//! whoever can write it already decides what the daemon runs.
//!
//! Keys in errors are the full dotted key: `hooks.before`, `source[2].hooks.timeout`.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long a hook may run before it (and every process it started) is killed.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(300);

/// One table of hooks, the global one or a source's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct HooksConfig {
    /// Runs before the job's work; failing or timing out fails the attempt.
    pub before: Option<Vec<String>>,
    /// Runs after every attempt, whatever its outcome (also after a failed `before`).
    pub after: Option<Vec<String>>,
    /// Runs once when the job succeeds.
    pub on_success: Option<Vec<String>>,
    /// Runs once when the job ends failed for good (dead letter, cancelled, timed out); not
    /// after an attempt that is retried.
    pub on_failure: Option<Vec<String>>,
    /// A hook command still running after this long is killed and counts as failed.
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::HumanDuration"))]
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Job kinds the global hooks run for (backup, check, drill, forget, migrate, noop, prune,
    /// rebuild-index, recovery, reencrypt, replicate, restore, sync); not set: backups only. Not allowed
    /// in a source's table: its hooks run for its backups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kinds: Option<Vec<String>>,
}

impl Default for HooksConfig {
    fn default() -> Self {
        Self {
            before: None,
            after: None,
            on_success: None,
            on_failure: None,
            timeout: HOOK_TIMEOUT,
            kinds: None,
        }
    }
}

/// The stages a job passes where hooks run, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookStage {
    Before,
    After,
    OnSuccess,
    OnFailure,
}

impl HookStage {
    pub const ALL: [HookStage; 4] = [Self::Before, Self::After, Self::OnSuccess, Self::OnFailure];

    /// The config key, also the value of `BACKUPD_HOOK`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Before => "before",
            Self::After => "after",
            Self::OnSuccess => "on_success",
            Self::OnFailure => "on_failure",
        }
    }
}

impl HooksConfig {
    /// The command of one stage.
    pub fn command(&self, stage: HookStage) -> Option<&[String]> {
        match stage {
            HookStage::Before => self.before.as_deref(),
            HookStage::After => self.after.as_deref(),
            HookStage::OnSuccess => self.on_success.as_deref(),
            HookStage::OnFailure => self.on_failure.as_deref(),
        }
    }

    /// Whether any command is set.
    pub fn is_empty(&self) -> bool {
        HookStage::ALL.iter().all(|s| self.command(*s).is_none())
    }

    /// Whether the global hooks run for a job of kind `kind` (`JobKind::name`).
    pub fn runs_for(&self, kind: &str) -> bool {
        match &self.kinds {
            Some(kinds) => kinds.iter().any(|k| k == kind),
            None => kind == "backup",
        }
    }

    /// Checks the table at `prefix` (`hooks` or `source[N].hooks`); `global` allows `kinds`.
    pub fn validate(&self, prefix: &str, global: bool) -> Result<(), super::declared::Problem> {
        let key = |field: &str| format!("{prefix}.{field}");
        for stage in HookStage::ALL {
            let Some(argv) = self.command(stage) else {
                continue;
            };
            let Some(program) = argv.first() else {
                return Err((
                    key(stage.as_str()),
                    "is empty; expected a command as an argv array such as \
                     [\"/usr/local/bin/notify\", \"--level\", \"warn\"]"
                        .to_owned(),
                ));
            };
            if !std::path::Path::new(program).is_absolute() {
                return Err((
                    key(stage.as_str()),
                    format!(
                        "starts with {program:?}; expected the program's absolute path (hooks \
                         run without a shell and without a PATH lookup)"
                    ),
                ));
            }
            if argv.iter().any(|a| a.contains('\0')) {
                return Err((
                    key(stage.as_str()),
                    "holds a NUL character, which no argument can carry".to_owned(),
                ));
            }
        }
        if self.timeout < Duration::from_secs(1) {
            return Err((
                key("timeout"),
                format!("is {:?}; expected at least 1s", self.timeout),
            ));
        }
        match (&self.kinds, global) {
            (Some(_), false) => {
                return Err((
                    key("kinds"),
                    "is only for the global [hooks] table; a source's hooks run for its backups"
                        .to_owned(),
                ))
            }
            (Some(kinds), true) => {
                let names = crate::protocol::JobKind::NAMES;
                if let Some(bad) = kinds.iter().find(|k| !names.contains(&k.as_str())) {
                    return Err((
                        key("kinds"),
                        format!(
                            "names {bad:?}, which is not a job kind; expected some of {}",
                            names.join(", ")
                        ),
                    ));
                }
            }
            (None, _) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        hooks: HooksConfig,
    }

    fn parse(text: &str) -> HooksConfig {
        toml::from_str::<Doc>(text).expect("parses").hooks
    }

    #[test]
    fn argv_arrays_and_a_timeout_parse_and_global_hooks_default_to_backups() {
        let h = parse(
            "[hooks]\nbefore = [\"/usr/local/bin/dump\", \"--all\"]\non_failure = \
             [\"/usr/bin/logger\", \"backup failed\"]\ntimeout = \"90s\"\n",
        );
        assert_eq!(
            h.command(HookStage::Before),
            Some(&["/usr/local/bin/dump".to_owned(), "--all".to_owned()][..])
        );
        assert_eq!(h.command(HookStage::After), None);
        assert_eq!(h.timeout, Duration::from_secs(90));
        assert!(h.runs_for("backup") && !h.runs_for("check"));
        assert_eq!(h.validate("hooks", true), Ok(()));
        assert_eq!(parse("[hooks]\n").timeout, HOOK_TIMEOUT);
        assert!(toml::from_str::<Doc>("[hooks]\nbefor = [\"/bin/true\"]\n").is_err());
    }

    #[test]
    fn bad_hooks_name_their_key() {
        let key = |text: &str, global: bool| {
            parse(text)
                .validate("source[1].hooks", global)
                .expect_err(text)
                .0
        };
        assert_eq!(
            key("[hooks]\nbefore = []\n", true),
            "source[1].hooks.before"
        );
        assert_eq!(
            key("[hooks]\nafter = [\"notify\"]\n", true),
            "source[1].hooks.after"
        );
        assert_eq!(
            key("[hooks]\ntimeout = \"10ms\"\n", true),
            "source[1].hooks.timeout"
        );
        assert_eq!(
            key("[hooks]\nkinds = [\"backup\"]\n", false),
            "source[1].hooks.kinds"
        );
        let (k, message) = parse("[hooks]\nkinds = [\"backup\", \"defrag\"]\n")
            .validate("hooks", true)
            .expect_err("unknown kind");
        assert_eq!(k, "hooks.kinds");
        assert!(
            message.contains("\"defrag\"") && message.contains("rebuild-index"),
            "{message}"
        );
        let h = parse("[hooks]\nkinds = [\"check\", \"forget\"]\n");
        assert!(h.runs_for("check") && !h.runs_for("backup"));
    }
}
