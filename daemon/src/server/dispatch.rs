//! From request to handler: one `match`, nothing else.

use super::handlers::{self, Outcome};
use crate::context::Context;
use backupd_common::protocol::{Identity, Request};
use std::sync::Arc;

pub async fn dispatch(ctx: &Arc<Context>, identity: &Identity, request: Request) -> Outcome {
    match request {
        Request::System(r) => handlers::system::handle(ctx, identity, r).await,
        Request::Repo(r) => handlers::repo::handle(ctx, r).await,
        Request::Backup(r) => handlers::backup::backup_request(ctx, r),
        Request::Snapshots(r) => handlers::backup::snapshots(ctx, r).await,
        Request::Restore(r) => handlers::restore::restore_request(ctx, r),
        Request::Forget(r) => handlers::restore::forget_request(ctx, r),
    }
}
