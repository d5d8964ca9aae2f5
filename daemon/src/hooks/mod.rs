//! Hooks: commands from the config file (`[hooks]`, a `[[source]]`'s `hooks`) that the queue's
//! worker runs around one attempt of a job. Which tables apply to a job and in which order is
//! decided here ([`plan`], pure); running one command is [`command`].
//!
//! Order, for one attempt: global `before`, the source's `before`, the job's work, then the
//! source's `after` and `on_success`/`on_failure`, then the global ones. A `before` that fails
//! (non-zero exit, timeout, cannot start) fails the attempt with [`HookError`] and the rest of
//! the `before` hooks and the work do not run; `after` runs after every attempt that started,
//! whatever happened. `on_success`/`on_failure` run once, when the job reaches its final state
//! (not after an attempt that will be retried). What `after` and `on_*` hooks do never changes
//! the job's outcome: their failures are logged.
//!
//! Hooks run with the daemon's rights, so only the config file declares them, and a source's
//! hooks run only for backups that run with the daemon's rights (a user's backup naming the
//! source gets the global hooks only). Everything a hook is told comes in `BACKUPD_*`
//! environment variables ([`environment`]); it inherits nothing else but `PATH`.

pub mod command;

use backupd_common::config::{Config, HookStage, HooksConfig};
use backupd_common::protocol::{
    ActingUser, AttemptOutcome, JobId, JobInfo, JobKind, JobState, Response,
};
use command::{End, Ran};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Lines of a hook's output copied into the job's log (the job log keeps 200 lines in all).
const LOG_LINES: usize = 40;
/// Lines of a failed `before` hook's output quoted in the job's error.
const ERROR_LINES: usize = 3;
/// `PATH` of a hook when the daemon has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error(
        "{stage} hook {program} could not be started: {source}; check the command in {origin} \
         of the config file, then `backupctl system reload`"
    )]
    Spawn {
        stage: &'static str,
        program: String,
        origin: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{stage} hook {program} failed with {status}: {output}{} (the hook's output: \
         `backupctl queue log {job}`)",
        consequence(stage)
    )]
    Failed {
        stage: &'static str,
        program: String,
        job: JobId,
        /// `exit status 3`, `signal 9`.
        status: String,
        /// The last lines the hook printed.
        output: String,
    },
    #[error(
        "{stage} hook {program} did not finish within its timeout of {} and was killed{} \
         (raise `timeout` in {origin} of the config file; the hook's output: `backupctl queue \
         log {job}`)",
        humantime::format_duration(*timeout),
        consequence(stage)
    )]
    TimedOut {
        stage: &'static str,
        program: String,
        origin: String,
        job: JobId,
        timeout: Duration,
    },
    #[error("{stage} hook {program} was killed: its job was stopped")]
    Stopped {
        stage: &'static str,
        program: String,
    },
}

/// What a failed hook of `stage` did to its job, for messages.
fn consequence(stage: &str) -> &'static str {
    if stage == HookStage::Before.as_str() {
        "; the job's work did not run"
    } else {
        ""
    }
}

/// One table of hooks that applies to a job.
#[derive(Clone, Debug, PartialEq)]
pub struct Set {
    /// Where it comes from, as the config file spells it: `[hooks]`, `the hooks of [[source]] "db"`.
    pub origin: String,
    pub config: HooksConfig,
}

/// The hook tables that apply to a job of `kind` acting for `acts_as`, in `before` order:
/// the global table (when its `kinds` name the kind), then the backup's source's.
pub fn plan(config: &Config, kind: &JobKind, acts_as: Option<ActingUser>) -> Vec<Set> {
    let mut sets = Vec::new();
    if !config.hooks.is_empty() && config.hooks.runs_for(kind.name()) {
        sets.push(Set {
            origin: "[hooks]".to_owned(),
            config: config.hooks.clone(),
        });
    }
    // A user's backup may name any source; the source's commands are the daemon's business.
    if let (JobKind::Backup(r), None) = (kind, acts_as) {
        let declared = r
            .source
            .as_deref()
            .and_then(|name| config.sources.iter().find(|s| s.name() == name));
        if let Some(source) = declared.filter(|s| !s.hooks.is_empty()) {
            sets.push(Set {
                origin: format!("the hooks of [[source]] {:?}", source.name()),
                config: source.hooks.clone(),
            });
        }
    }
    sets
}

/// What a hook is told about its job.
#[derive(Clone, Debug)]
pub struct JobFacts {
    pub id: JobId,
    pub kind: &'static str,
    pub repository: String,
    pub source: Option<String>,
    pub attempt: u32,
}

impl JobFacts {
    pub fn new(id: JobId, kind: &JobKind, repository: String, attempt: u32) -> Self {
        let source = match kind {
            JobKind::Backup(r) => r.source.clone(),
            _ => None,
        };
        Self {
            id,
            kind: kind.name(),
            repository,
            source,
            attempt,
        }
    }
}

/// How an attempt ended, as `after` and `on_*` hooks are told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    /// The attempt's outcome: `succeeded`, `failed`, `cancelled`, `timed-out`, `interrupted`.
    pub outcome: &'static str,
    /// The job's state once the end is recorded.
    pub state: JobState,
    pub snapshot: Option<String>,
    pub error: Option<String>,
}

impl Ended {
    /// From the job as it will be recorded after the attempt.
    pub fn of(job: &JobInfo) -> Self {
        let outcome = match job.attempts.last().map(|a| a.outcome) {
            Some(AttemptOutcome::Succeeded) => "succeeded",
            Some(AttemptOutcome::Failed) => "failed",
            Some(AttemptOutcome::Cancelled) => "cancelled",
            Some(AttemptOutcome::TimedOut) => "timed-out",
            Some(AttemptOutcome::Interrupted) => "interrupted",
            Some(AttemptOutcome::Crashed) => "crashed",
            Some(AttemptOutcome::Running) | None => "running",
        };
        let snapshot = match (&job.state, &job.result) {
            (JobState::Succeeded, Some(Response::Backup(r))) => Some(r.snapshot.clone()),
            _ => None,
        };
        let error = match job.state {
            JobState::Succeeded => None,
            _ => job.error.as_ref().map(|e| e.message.clone()),
        };
        Self {
            outcome,
            state: job.state,
            snapshot,
            error,
        }
    }

    /// The once-per-job hook this end calls for: none while the job will run again.
    fn final_stage(&self) -> Option<HookStage> {
        match self.state {
            JobState::Succeeded => Some(HookStage::OnSuccess),
            JobState::DeadLetter | JobState::Cancelled | JobState::TimedOut => {
                Some(HookStage::OnFailure)
            }
            _ => None,
        }
    }
}

/// The environment of a hook: `PATH` and the `BACKUPD_*` variables, nothing else.
pub fn environment(
    job: &JobFacts,
    stage: HookStage,
    ended: Option<&Ended>,
    path: &str,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH", path.to_owned()),
        ("BACKUPD_HOOK", stage.as_str().to_owned()),
        ("BACKUPD_JOB_ID", job.id.to_string()),
        ("BACKUPD_JOB_KIND", job.kind.to_owned()),
        ("BACKUPD_REPOSITORY", job.repository.clone()),
        ("BACKUPD_ATTEMPT", job.attempt.to_string()),
    ];
    if let Some(source) = &job.source {
        env.push(("BACKUPD_SOURCE", source.clone()));
    }
    if let Some(e) = ended {
        env.push(("BACKUPD_OUTCOME", e.outcome.to_owned()));
        env.push(("BACKUPD_STATE", e.state.as_str().to_owned()));
        if let Some(snapshot) = &e.snapshot {
            env.push(("BACKUPD_SNAPSHOT", snapshot.clone()));
        }
        if let Some(error) = &e.error {
            env.push(("BACKUPD_ERROR", error.clone()));
        }
    }
    env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// The hooks of one attempt of a job.
pub struct Hooks {
    sets: Vec<Set>,
    job: JobFacts,
    path: String,
}

impl Hooks {
    pub fn new(sets: Vec<Set>, job: JobFacts) -> Self {
        let path = std::env::var("PATH")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_PATH.to_owned());
        Self { sets, job, path }
    }

    /// Runs the `before` hooks in order; the first that fails fails the attempt. `cancel` (the
    /// job's) kills a running hook.
    pub async fn before(&self, cancel: &CancellationToken) -> Result<(), HookError> {
        for set in &self.sets {
            self.run(set, HookStage::Before, None, cancel).await?;
        }
        Ok(())
    }

    /// Runs the `after` hooks and, at the job's final state, `on_success` or `on_failure`, in
    /// reverse table order. Failures are logged; they change nothing. Not cancellable: the
    /// job's stop has happened already, and these clean up after it (each has its timeout).
    pub async fn after(&self, ended: &Ended) {
        let never = CancellationToken::new();
        for set in self.sets.iter().rev() {
            let stages = [Some(HookStage::After), ended.final_stage()];
            for stage in stages.into_iter().flatten() {
                if let Err(e) = self.run(set, stage, Some(ended), &never).await {
                    tracing::warn!(
                        job = self.job.id,
                        error = %e,
                        "hook failed; the job's outcome stands"
                    );
                }
            }
        }
    }

    async fn run(
        &self,
        set: &Set,
        stage: HookStage,
        ended: Option<&Ended>,
        cancel: &CancellationToken,
    ) -> Result<(), HookError> {
        let Some(argv) = set.config.command(stage) else {
            return Ok(());
        };
        let program = argv.first().cloned().unwrap_or_default();
        let id = self.job.id;
        let env = environment(&self.job, stage, ended, &self.path);
        tracing::info!(job = id, hook = stage.as_str(), %program, "running hook");
        let ran = command::run(argv, &env, set.config.timeout, cancel)
            .await
            .map_err(|source| HookError::Spawn {
                stage: stage.as_str(),
                program: program.clone(),
                origin: set.origin.clone(),
                source,
            })?;
        log_output(id, stage, &program, &ran);
        match ran.end {
            End::Exited(status) if status.success() => {
                tracing::info!(job = id, hook = stage.as_str(), %program, "hook succeeded");
                Ok(())
            }
            End::Exited(status) => Err(HookError::Failed {
                stage: stage.as_str(),
                program,
                job: id,
                status: describe(status),
                output: last_lines(&ran.output),
            }),
            End::TimedOut => Err(HookError::TimedOut {
                stage: stage.as_str(),
                program,
                origin: set.origin.clone(),
                job: id,
                timeout: set.config.timeout,
            }),
            End::Cancelled => Err(HookError::Stopped {
                stage: stage.as_str(),
                program,
            }),
        }
    }
}

/// Copies the hook's last output lines into the job's log.
fn log_output(id: JobId, stage: HookStage, program: &str, ran: &Ran) {
    let text = String::from_utf8_lossy(&ran.output);
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(LOG_LINES);
    if skip > 0 || ran.truncated {
        tracing::info!(
            job = id,
            hook = stage.as_str(),
            "{program}: (earlier output left out; the last {} lines follow)",
            lines.len() - skip
        );
    }
    for line in &lines[skip..] {
        tracing::info!(job = id, hook = stage.as_str(), "{program}: {line}");
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// The last few non-empty lines of `output`, on one line.
fn last_lines(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return "it printed nothing".to_owned();
    }
    let mut tail = lines[lines.len().saturating_sub(ERROR_LINES)..].join(" / ");
    if tail.len() > 500 {
        let mut cut = tail.len() - 500;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = format!("…{}", &tail[cut..]);
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use backupd_common::protocol::{BackupRequest, CheckRequest};
    use std::path::Path;

    fn config(text: &str) -> Config {
        Config::parse(text, Path::new("/etc/backupd/config.toml")).expect("valid config")
    }

    fn backup(source: Option<&str>) -> JobKind {
        JobKind::Backup(BackupRequest {
            source: source.map(str::to_owned),
            ..Default::default()
        })
    }

    const BOTH: &str = "[hooks]\nbefore = [\"/bin/global\"]\n\
         [[source]]\npath = \"/srv/db\"\n[source.hooks]\nbefore = [\"/bin/db\"]\n\
         [[source]]\npath = \"/home\"\n";

    #[test]
    fn global_hooks_come_first_then_the_backups_source() {
        let c = config(BOTH);
        let origins = |kind: &JobKind, acts_as| -> Vec<String> {
            plan(&c, kind, acts_as)
                .into_iter()
                .map(|s| s.origin)
                .collect()
        };
        assert_eq!(
            origins(&backup(Some("db")), None),
            ["[hooks]", "the hooks of [[source]] \"db\""]
        );
        assert_eq!(origins(&backup(Some("home")), None), ["[hooks]"]);
        assert_eq!(origins(&backup(None), None), ["[hooks]"]);
        // Global hooks run for backups only unless `kinds` says otherwise.
        assert!(origins(&JobKind::Check(CheckRequest::default()), None).is_empty());
        let user = Some(ActingUser {
            uid: 1000,
            gid: 1000,
        });
        assert_eq!(origins(&backup(Some("db")), user), ["[hooks]"]);
        let checks = config("[hooks]\nafter = [\"/bin/a\"]\nkinds = [\"check\"]\n");
        assert_eq!(plan(&checks, &backup(None), None), vec![]);
        assert_eq!(
            plan(&checks, &JobKind::Check(CheckRequest::default()), None).len(),
            1
        );
        assert!(plan(&config(""), &backup(Some("db")), None).is_empty());
    }

    #[test]
    fn hooks_are_told_the_job_and_its_end_in_backupd_variables_only() {
        let facts = JobFacts::new(7, &backup(Some("db")), "offsite".into(), 2);
        let env = environment(&facts, HookStage::Before, None, "/usr/bin");
        let get = |env: &[(String, String)], k: &str| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        };
        assert_eq!(get(&env, "BACKUPD_JOB_ID").as_deref(), Some("7"));
        assert_eq!(get(&env, "BACKUPD_JOB_KIND").as_deref(), Some("backup"));
        assert_eq!(get(&env, "BACKUPD_SOURCE").as_deref(), Some("db"));
        assert_eq!(get(&env, "BACKUPD_REPOSITORY").as_deref(), Some("offsite"));
        assert_eq!(get(&env, "BACKUPD_ATTEMPT").as_deref(), Some("2"));
        assert_eq!(get(&env, "BACKUPD_HOOK").as_deref(), Some("before"));
        assert_eq!(get(&env, "BACKUPD_OUTCOME"), None);
        assert!(env
            .iter()
            .all(|(k, _)| k == "PATH" || k.starts_with("BACKUPD_")));
        let ended = Ended {
            outcome: "failed",
            state: JobState::DeadLetter,
            snapshot: None,
            error: Some("disk gone".into()),
        };
        assert_eq!(ended.final_stage(), Some(HookStage::OnFailure));
        let env = environment(&facts, HookStage::OnFailure, Some(&ended), "/usr/bin");
        assert_eq!(get(&env, "BACKUPD_OUTCOME").as_deref(), Some("failed"));
        assert_eq!(get(&env, "BACKUPD_ERROR").as_deref(), Some("disk gone"));
        assert_eq!(get(&env, "BACKUPD_HOOK").as_deref(), Some("on_failure"));
        let retried = Ended {
            state: JobState::RetryWait,
            ..ended
        };
        assert_eq!(
            retried.final_stage(),
            None,
            "on_failure waits for the last attempt"
        );
    }

    #[test]
    fn a_failed_hooks_message_quotes_its_last_lines() {
        assert_eq!(
            last_lines(b"one\n\ntwo\nthree\nfour\n"),
            "two / three / four"
        );
        assert_eq!(last_lines(b"  \n"), "it printed nothing");
        assert!(last_lines("é".repeat(400).as_bytes()).starts_with('…'));
    }
}
