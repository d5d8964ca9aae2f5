//! `drill`: a recovery drill (`recovery::drill`) of a source's newest snapshot, or of a
//! repository's. Shared claim: it only reads the repository, and restores into scratch space
//! under the state directory that it always deletes. Its verdict is its result (`ok`); the
//! outcome is recorded as the source's last drill, and a drill that finds a mismatch raises
//! an alert (`recovery::drills`).

use super::{Claim, Operation, Run};
use crate::engine::EngineError;
use crate::error::Error;
use crate::recovery::drill::{drill, DrillOptions};
use crate::recovery::drills::{Drills, Subject};
use crate::repo::now_ns;
use crate::repo::registry::Registry;
use backupd_common::protocol::{parse_sample, DrillRequest, DrillResult, Permission, Response};
use std::sync::Arc;

pub struct Drill;

/// What a drill needs besides the repositories: the sources (a source's directory), the
/// configured sample share, and where outcomes are kept.
#[derive(Clone)]
pub struct DrillHandles {
    pub drills: Arc<Drills>,
    pub sources: Arc<crate::watch::Sources>,
    pub settings: crate::context::SettingsHandle,
}

impl Operation for Drill {
    type Args = DrillRequest;
    const TIMEOUT_KEY: &'static str = "drill";
    const PERMISSION: Permission = Permission::RepoManage;

    fn claim(args: &DrillRequest) -> Option<Claim> {
        Some(Claim::on(&args.repo, false))
    }

    /// A repository, a source name and a share: nothing to hide.
    fn redact(_: &mut DrillRequest) {}

    fn validate(r: &DrillRequest, _: &Registry) -> Result<(), Error> {
        percent(r).map(|_| ())
    }

    fn run(r: DrillRequest, run: &Run<'_>) -> Result<Response, Error> {
        // The repository was pinned at submission.
        let repo = r.repo.clone().unwrap_or_default();
        let subject = match &r.source {
            Some(name) => Subject::Source(name.clone()),
            None => Subject::Repo(repo.clone()),
        };
        let outcome = attempt(r, run);
        let Some(drills) = run.env.drill.as_ref().map(|h| &h.drills) else {
            return outcome.map(|d| Response::Drill(Box::new(d)));
        };
        match outcome {
            Ok(result) => {
                drills.finished(&subject, run.job, now_ns(), &result);
                Ok(Response::Drill(Box::new(result)))
            }
            Err(e) => {
                // A cancelled or interrupted drill reached no verdict worth keeping.
                if !run.cancel.is_cancelled() {
                    drills.failed(&subject, run.job, now_ns(), &repo, e.to_string());
                }
                Err(e)
            }
        }
    }
}

/// One drill, up to its verdict.
fn attempt(r: DrillRequest, run: &Run<'_>) -> Result<DrillResult, Error> {
    let handles = run.env.drill.as_ref();
    let configured = handles.map(|h| h.settings.get().config.maintenance.drill_sample_percent());
    let sample_percent = percent(&r)?.or(configured).unwrap_or(DEFAULT_PERCENT);
    let (entry, repo) = run.env.repos.open(r.repo.as_deref())?;
    let source = match (&r.source, handles) {
        (Some(name), Some(h)) => Some((name.clone(), h.sources.get(name)?.spec.path)),
        (Some(name), None) => return Err(crate::watch::SourceError::Unknown(name.clone()).into()),
        (None, _) => None,
    };
    let opts = DrillOptions {
        source,
        repo: entry.name,
        sample_percent,
        seed: run.job,
        state_dir: run.env.state_dir.clone(),
    };
    Ok(drill(&repo, &opts, run.progress, run.cancel)?)
}

/// Without a configuration to read (tests of the queue alone).
const DEFAULT_PERCENT: f64 = 1.0;

/// The share asked for (`None`: the configured one); out of range is refused.
fn percent(r: &DrillRequest) -> Result<Option<f64>, Error> {
    r.sample_percent
        .map(|p| {
            parse_sample(&p.to_string())
                .map_err(|e| EngineError::InvalidArgument(format!("--sample: {e}")).into())
        })
        .transpose()
}
