//! `analytics ...`: one typed helper per [`AnalyticsRequest`], beside the rest of [`Client`]
//! (a file of its own because client.rs is past the size where a file stays readable).

use super::{unexpected, Client};
use backupd_common::client::ClientError;
use backupd_common::protocol::{
    AnalyticsReport, AnalyticsRequest, AnomalyInfo, BacktestReport, Estimate, HoldInfo, Prediction,
    Recommendation, Request, Response, RiskReport, TrendInfo,
};
use std::time::Duration;

impl Client {
    async fn analytics(&mut self, request: AnalyticsRequest) -> Result<Response, ClientError> {
        self.conn.call(Request::Analytics(request)).await
    }

    /// One prediction per source (or for `source`) over the next `days`.
    pub async fn predict(
        &mut self,
        source: Option<String>,
        days: u32,
    ) -> Result<Vec<Prediction>, ClientError> {
        match self
            .analytics(AnalyticsRequest::Predict { source, days })
            .await?
        {
            Response::Predictions(p) => Ok(p),
            other => Err(unexpected(other)),
        }
    }

    pub async fn backtest(
        &mut self,
        source: Option<String>,
        days: u32,
    ) -> Result<BacktestReport, ClientError> {
        match self
            .analytics(AnalyticsRequest::Backtest { source, days })
            .await?
        {
            Response::Backtest(b) => Ok(*b),
            other => Err(unexpected(other)),
        }
    }

    /// `bytes` and `files`: what a scan of a path found, to estimate a backup of it.
    pub async fn estimate(
        &mut self,
        source: Option<String>,
        bytes: Option<u64>,
        files: Option<u64>,
    ) -> Result<Vec<Estimate>, ClientError> {
        let request = AnalyticsRequest::Estimate {
            source,
            bytes,
            files,
        };
        match self.analytics(request).await? {
            Response::Estimates(e) => Ok(e),
            other => Err(unexpected(other)),
        }
    }

    /// Newest first.
    pub async fn anomalies(
        &mut self,
        since: Option<Duration>,
        source: Option<String>,
    ) -> Result<Vec<AnomalyInfo>, ClientError> {
        match self
            .analytics(AnalyticsRequest::Anomalies { since, source })
            .await?
        {
            Response::Anomalies(a) => Ok(a),
            other => Err(unexpected(other)),
        }
    }

    pub async fn trends(
        &mut self,
        source: Option<String>,
        days: u32,
    ) -> Result<Vec<TrendInfo>, ClientError> {
        match self
            .analytics(AnalyticsRequest::Trends { source, days })
            .await?
        {
            Response::Trends(t) => Ok(t),
            other => Err(unexpected(other)),
        }
    }

    pub async fn risk(&mut self, source: Option<String>) -> Result<RiskReport, ClientError> {
        match self.analytics(AnalyticsRequest::Risk { source }).await? {
            Response::Risk(r) => Ok(*r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn recommendations(&mut self) -> Result<Vec<Recommendation>, ClientError> {
        match self.analytics(AnalyticsRequest::Recommendations).await? {
            Response::Recommendations(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn analytics_report(&mut self, days: u32) -> Result<AnalyticsReport, ClientError> {
        match self.analytics(AnalyticsRequest::Report { days }).await? {
            Response::AnalyticsReport(r) => Ok(*r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn holds(&mut self) -> Result<Vec<HoldInfo>, ClientError> {
        match self.analytics(AnalyticsRequest::Holds).await? {
            Response::Holds(h) => Ok(h),
            other => Err(unexpected(other)),
        }
    }

    /// The hold as it was before the release.
    pub async fn release_hold(&mut self, source: String) -> Result<HoldInfo, ClientError> {
        match self.analytics(AnalyticsRequest::Release { source }).await? {
            Response::HoldReleased(h) => Ok(*h),
            other => Err(unexpected(other)),
        }
    }
}
