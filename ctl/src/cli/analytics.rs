//! `backupctl analytics ...`: the command line of predictions, duration estimates, anomalies,
//! trends, the risk score, recommendations, the report and retention holds.

use crate::completion;
use clap::{Args, Subcommand, ValueEnum};
use clap_complete::ArgValueCompleter;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum AnalyticsCommand {
    /// The success rate each source's backups are expected to have over the next days, with
    /// its 90 % interval and the failures it means; --backtest shows how well the model
    /// predicted held-out history instead.
    Predict(PredictArgs),
    /// How long the next backup of each source should take, with its 90 % interval; with
    /// --path, how long a backup of that path would (backupctl reads its metadata only).
    Estimate(EstimateArgs),
    /// Backups whose duration, size, changed files or ratios fell outside three robust
    /// standard deviations of the source's recent ones, and mass-encryption signals; newest
    /// first.
    Anomalies(AnomaliesArgs),
    /// Whether each source's success rate, duration, size and throughput are improving,
    /// stable or declining, with the slope and its p-value.
    Trends(TrendsArgs),
    /// The 0-100 risk score of each source and the factors behind it, with their evidence.
    Risk(SourceArg),
    /// What to do next, with what triggered it and the command or setting that does it.
    Recommendations,
    /// Everything above for every source: as text, JSON, or one self-contained HTML page
    /// with charts.
    Report(ReportArgs),
    /// Retention holds placed after a mass-encryption signal: the source's older snapshots
    /// are kept by every forget until the hold is released.
    #[command(subcommand)]
    Hold(HoldCommand),
}

#[derive(Debug, Subcommand)]
pub enum HoldCommand {
    /// The holds in force.
    List,
    /// Release a source's hold, so retention may forget its older snapshots again (needs
    /// `system.manage`).
    Release {
        /// The source whose hold to release, as `analytics hold list` shows it.
        #[arg(add = ArgValueCompleter::new(completion::sources))]
        source: String,
    },
}

#[derive(Debug, Args)]
pub struct SourceArg {
    /// Only this watched source (default: all).
    #[arg(long, value_name = "NAME", add = ArgValueCompleter::new(completion::sources))]
    pub source: Option<String>,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub source: SourceArg,
    /// How many days ahead to predict (7-90).
    #[arg(long, default_value_t = 30, value_name = "N",
          value_parser = clap::value_parser!(u32).range(7..=90))]
    pub days: u32,
    /// Score the model on held-out history instead (Brier score against the all-time rate,
    /// calibration), and the duration estimate's error.
    #[arg(long)]
    pub backtest: bool,
}

#[derive(Debug, Args)]
pub struct EstimateArgs {
    #[command(flatten)]
    pub source: SourceArg,
    /// Estimate a backup of this file or directory: its regular files are counted and their
    /// sizes summed here (symlinks are not followed).
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::AnyPath)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AnomaliesArgs {
    /// Only anomalies raised within this long, e.g. `7d`, `12h` (default: all kept).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub since: Option<Duration>,
    #[command(flatten)]
    pub source: SourceArg,
}

#[derive(Debug, Args)]
pub struct TrendsArgs {
    #[command(flatten)]
    pub source: SourceArg,
    /// How many days of history the trends are fitted on (1-366).
    #[arg(long, default_value_t = 30, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=366))]
    pub days: u32,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// How many days of history the report covers (1-366).
    #[arg(long, default_value_t = 30, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=366))]
    pub days: u32,
    /// `text` (default), `json` (as --json), or `html`: one page with inline charts, no
    /// scripts and nothing fetched from the network.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<ReportFormat>,
    /// Write the report to this file instead of stdout.
    #[arg(long, short, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Html,
}
