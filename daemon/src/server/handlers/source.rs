//! `source` group: watched directories.

use super::Outcome;
use crate::server::Services;
use backupd_common::protocol::{Response, SourceRequest};

pub async fn handle(services: &Services, request: SourceRequest) -> Outcome {
    match request {
        SourceRequest::Add(spec) => Outcome::result(
            services
                .sources
                .add(spec, false)
                .await
                .map(|s| Response::Source(Box::new(s))),
        ),
        SourceRequest::List => Outcome::ok(Response::Sources(services.sources.list())),
        SourceRequest::Remove { name } => Outcome::result(
            services
                .sources
                .remove(&name)
                .await
                .map(|s| Response::Source(Box::new(s))),
        ),
    }
}
