//! One typed helper per request, so no command handles an unexpected response.

use backupd_common::client::{ClientError, Connection};
use backupd_common::protocol::{
    HealthReport, Identity, Progress, ReloadReport, Request, Response, SystemRequest,
};
use std::path::Path;
use std::time::Duration;

#[derive(Debug)]
pub struct Client {
    conn: Connection,
}

fn unexpected(response: Response) -> ClientError {
    ClientError::Unexpected(format!("{response:?}"))
}

impl Client {
    pub async fn connect(socket: &Path) -> Result<Self, ClientError> {
        let client = format!("backupctl {}", backupd_common::VERSION);
        Ok(Self {
            conn: Connection::connect(socket, &client).await?,
        })
    }

    pub async fn health(&mut self) -> Result<HealthReport, ClientError> {
        match self
            .conn
            .call(Request::System(SystemRequest::Health))
            .await?
        {
            Response::Health(h) => Ok(h),
            other => Err(unexpected(other)),
        }
    }

    /// Calls `each` with every streamed report until `count` reports (0 = forever).
    pub async fn watch_health(
        &mut self,
        interval: Duration,
        count: u32,
        mut each: impl FnMut(HealthReport),
    ) -> Result<(), ClientError> {
        let request = Request::System(SystemRequest::WatchHealth { interval, count });
        let done = self
            .conn
            .call_streaming(request, |p| match p {
                Progress::Health(h) => each(h),
            })
            .await?;
        match done {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    pub async fn whoami(&mut self) -> Result<Identity, ClientError> {
        match self
            .conn
            .call(Request::System(SystemRequest::Whoami))
            .await?
        {
            Response::Identity(i) => Ok(i),
            other => Err(unexpected(other)),
        }
    }

    pub async fn reload(&mut self) -> Result<ReloadReport, ClientError> {
        match self
            .conn
            .call(Request::System(SystemRequest::Reload))
            .await?
        {
            Response::Reloaded(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn shutdown(&mut self) -> Result<(), ClientError> {
        match self
            .conn
            .call(Request::System(SystemRequest::Shutdown))
            .await?
        {
            Response::ShuttingDown => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}
