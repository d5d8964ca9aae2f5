//! From request to handler: one `match`, nothing else.

use super::handlers::{self, Outcome};
use crate::context::Context;
use backupd_common::protocol::{Identity, Request};
use std::sync::Arc;

pub async fn dispatch(ctx: &Arc<Context>, identity: &Identity, request: Request) -> Outcome {
    match request {
        Request::System(r) => handlers::system::handle(ctx, identity, r).await,
        Request::Repo(r) => handlers::repo::handle(ctx, r).await,
        Request::Snapshots(r) => handlers::snapshots::snapshots(ctx, r).await,
        Request::Queue(r) => handlers::queue::handle(ctx, identity, r).await,
        Request::Source(r) => handlers::source::handle(ctx, r).await,
    }
}
