//! Analytics over the job history (issue 19, in progress on this branch): the statistics are
//! pure functions over numbers the history already holds, so they are tested without a daemon.
//!
//! - `aggregates`: each source's running statistics (tree `analytics.sources`), updated as its
//!   backups finish, and what a new backup's values say.
//! - `baseline`: a metric's recent values per source, and whether a new one lies beyond three
//!   robust standard deviations of them.
//! - `predict`: the success rate of a source's jobs over a horizon, from a Beta-Binomial
//!   posterior whose evidence decays with age.
//! - `backtest`: how well `predict` did on held-out history (Brier score, calibration).
//! - `synthetic`: deterministic job histories with documented regimes, for the backtest.
//! - `ransomware`: the mass-encryption signal: incompressible changed data together with a jump
//!   in files changed.
//! - `trends`: improving, stable or declining, from the least-squares slope and its t-test.
//! - `risk`: the 0–100 risk score of a source from weighted factors, each with its evidence.
//!
//! Not wired into the daemon yet: nothing calls `Aggregates::record`; no requests, alerts or
//! holds.

pub mod aggregates;
pub mod backtest;
pub mod baseline;
pub mod predict;
pub mod ransomware;
pub mod risk;
pub mod synthetic;
pub mod trends;
