//! `recovery`: runs steps of a recovery plan, rolls it back or commits it (`crate::recovery`).
//! Its claim is on the name `recovery:PLAN` (`:` is not allowed in repository names),
//! exclusive, so that two actions on one plan never overlap; the restore inside takes the
//! repository's read lock itself. It replaces directories as the daemon, so submitting it needs
//! `restore.any`.

use super::{Claim, Operation, Run};
use crate::error::Error;
use crate::recovery::RecoveryError;
use backupd_common::protocol::{Permission, RecoveryJobRequest, Response};

pub struct Recovery;

impl Operation for Recovery {
    type Args = RecoveryJobRequest;
    const TIMEOUT_KEY: &'static str = "recovery";
    const PERMISSION: Permission = Permission::RestoreAny;

    fn claim(r: &RecoveryJobRequest) -> Option<Claim> {
        Some(Claim {
            repo: format!("recovery:{}", r.plan),
            exclusive: true,
        })
    }

    fn redact(_: &mut RecoveryJobRequest) {}

    fn run(r: RecoveryJobRequest, job: &Run<'_>) -> Result<Response, Error> {
        let plans =
            job.env.recovery.as_ref().ok_or_else(|| {
                RecoveryError::Invalid("the recovery service is not running".into())
            })?;
        crate::recovery::act(plans, r, job).map(|p| Response::RecoveryPlan(Box::new(p)))
    }
}
