//! One typed helper per request, so no command handles an unexpected response.

use backupd_common::client::{ClientError, Connection};
use backupd_common::protocol::{
    BackupRequest, BackupResult, CheckResult, ForgetRequest, ForgetResult, HealthReport, Identity,
    KeyExport, OperationProgress, Progress, RebuildResult, ReloadReport, RepoInfo, RepoRequest,
    Request, Response, RestoreRequest, RestoreResult, Secret, SnapshotInfo, SnapshotsRequest,
    SystemRequest,
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
            .call_streaming(request, |p| {
                if let Progress::Health(h) = p {
                    each(h)
                }
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

    async fn operation(
        &mut self,
        request: Request,
        mut on_progress: impl FnMut(OperationProgress),
    ) -> Result<Response, ClientError> {
        self.conn
            .call_streaming(request, |p| {
                if let Progress::Operation(o) = p {
                    on_progress(o)
                }
            })
            .await
    }

    pub async fn repo_init(
        &mut self,
        name: String,
        path: Vec<u8>,
        password: Option<Secret>,
    ) -> Result<RepoInfo, ClientError> {
        let request = Request::Repo(RepoRequest::Init {
            name,
            path,
            password,
        });
        match self.conn.call(request).await? {
            Response::Repo(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn repo_add(
        &mut self,
        name: String,
        path: Vec<u8>,
        password: Secret,
    ) -> Result<RepoInfo, ClientError> {
        let request = Request::Repo(RepoRequest::Add {
            name,
            path,
            password,
        });
        match self.conn.call(request).await? {
            Response::Repo(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn repo_list(&mut self) -> Result<Vec<RepoInfo>, ClientError> {
        match self.conn.call(Request::Repo(RepoRequest::List)).await? {
            Response::Repos(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn key_export(&mut self, name: String) -> Result<KeyExport, ClientError> {
        match self
            .conn
            .call(Request::Repo(RepoRequest::KeyExport { name }))
            .await?
        {
            Response::KeyExport(k) => Ok(k),
            other => Err(unexpected(other)),
        }
    }

    pub async fn check(
        &mut self,
        name: Option<String>,
        read_data_percent: u8,
        on_progress: impl FnMut(OperationProgress),
    ) -> Result<CheckResult, ClientError> {
        let request = Request::Repo(RepoRequest::Check {
            name,
            read_data_percent,
        });
        match self.operation(request, on_progress).await? {
            Response::Check(c) => Ok(c),
            other => Err(unexpected(other)),
        }
    }

    pub async fn backup(
        &mut self,
        request: BackupRequest,
        on_progress: impl FnMut(OperationProgress),
    ) -> Result<BackupResult, ClientError> {
        match self
            .operation(Request::Backup(request), on_progress)
            .await?
        {
            Response::Backup(b) => Ok(b),
            other => Err(unexpected(other)),
        }
    }

    pub async fn restore(
        &mut self,
        request: RestoreRequest,
        on_progress: impl FnMut(OperationProgress),
    ) -> Result<RestoreResult, ClientError> {
        match self
            .operation(Request::Restore(request), on_progress)
            .await?
        {
            Response::Restore(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn snapshots(
        &mut self,
        request: SnapshotsRequest,
    ) -> Result<Vec<SnapshotInfo>, ClientError> {
        match self.conn.call(Request::Snapshots(request)).await? {
            Response::Snapshots(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    pub async fn forget(
        &mut self,
        request: ForgetRequest,
        on_progress: impl FnMut(OperationProgress),
    ) -> Result<ForgetResult, ClientError> {
        match self
            .operation(Request::Forget(request), on_progress)
            .await?
        {
            Response::Forget(f) => Ok(f),
            other => Err(unexpected(other)),
        }
    }

    pub async fn rebuild_index(
        &mut self,
        name: Option<String>,
        on_progress: impl FnMut(OperationProgress),
    ) -> Result<RebuildResult, ClientError> {
        let request = Request::Repo(RepoRequest::RebuildIndex { name });
        match self.operation(request, on_progress).await? {
            Response::RebuildIndex(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }
}
