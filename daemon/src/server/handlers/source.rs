//! `source` group: watched directories.

use super::Outcome;
use crate::context::Context;
use backupd_common::protocol::{Response, SourceRequest};
use std::sync::Arc;

pub async fn handle(ctx: &Arc<Context>, request: SourceRequest) -> Outcome {
    match request {
        SourceRequest::Add(spec) => Outcome::result(
            ctx.sources
                .add(ctx, spec, false)
                .await
                .map(|s| Response::Source(Box::new(s))),
        ),
        SourceRequest::List => Outcome::ok(Response::Sources(ctx.sources.list())),
        SourceRequest::Remove { name } => Outcome::result(
            ctx.sources
                .remove(&name)
                .await
                .map(|s| Response::Source(Box::new(s))),
        ),
    }
}
