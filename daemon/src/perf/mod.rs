//! The performance service: samples the machine and the daemon every `perf.sample_every`
//! ([`sample`]), keeps the history ([`store`]), opens and ends bottlenecks ([`bottleneck`]),
//! and every `perf.optimize_every` lets the tuner ([`tune`]) move the tunables that jobs read
//! through [`Tuning`] when they start. [`health`] turns its findings and the other services'
//! into the health score.
//!
//! The rules are pure functions; [`Perf::run`] is the thin shell that feeds them samples and
//! stores what they decide.

pub mod bottleneck;
pub mod counters;
pub mod health;
pub mod priority;
pub mod sample;
pub mod store;
pub mod tune;

use crate::context::SettingsHandle;
use crate::queue::Queue;
use crate::repo::location::Location;
use crate::repo::now_ns;
use crate::repo::registry::Registry;
use crate::state::records::perf::TunedRecord;
use crate::state::{State, StateError};
use crate::watch::Sources;
use backupd_common::config::perf::{parse_io_class, PerfConfig};
use backupd_common::config::Config;
use backupd_common::protocol::{
    Baseline, Bottleneck, BottleneckKind, DiskForecast, IoClass, Optimized, PerfCurrent,
    PerfReport, PerfSample, Stat, Tunables, TuningChange,
};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const SEC_NS: i64 = 1_000_000_000;
/// How far back disk growth is fitted.
const FORECAST_WINDOW_NS: i64 = 6 * 3600 * SEC_NS;
/// How often old samples are downsampled and expired.
const COMPACT_EVERY_NS: i64 = 10 * 60 * SEC_NS;
/// How long a computed baseline is reused.
const BASELINE_REFRESH_NS: i64 = 10 * 60 * SEC_NS;
/// The baseline looks at the last week.
const BASELINE_WINDOW_NS: i64 = 7 * 86_400 * SEC_NS;

/// The tunables in force, as jobs read them when they start. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Tuning(Arc<RwLock<Tunables>>);

impl Tuning {
    pub fn new(t: Tunables) -> Self {
        Self(Arc::new(RwLock::new(t)))
    }

    pub fn get(&self) -> Tunables {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, t: Tunables) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = t;
    }

    /// The engine lane of a background job (backup, check, prune).
    pub fn lane(&self) -> crate::engine::Lane {
        let t = self.get();
        crate::engine::Lane {
            threads: t.threads as usize,
            nice: t.nice,
            io: t.io_class,
        }
    }
}

/// What the configuration asks for: the ceiling the tuner works under and returns to.
pub fn configured(config: &Config) -> Tunables {
    let p = &config.perf;
    Tunables {
        workers: config.queue.workers,
        threads: crate::engine::pool().current_num_threads() as u32,
        zstd_level: crate::engine::backup::DEFAULT_ZSTD_LEVEL,
        pack_bytes: crate::repo::pack::TARGET_PACK_SIZE as u64,
        nice: p.nice,
        io_class: match parse_io_class(&p.io_class) {
            Ok(Some(level)) => IoClass::BestEffort(level),
            Ok(None) => IoClass::Idle,
            // Validated at load; the default if it somehow is not.
            Err(_) => IoClass::BestEffort(7),
        },
    }
}

/// Keeps tuned values inside what the configuration allows now (a reload may have lowered
/// `queue.workers` or raised `perf.nice`).
fn within(t: &Tunables, c: &Tunables) -> Tunables {
    Tunables {
        workers: t.workers.clamp(1, c.workers.max(1)),
        threads: t.threads.clamp(1, c.threads.max(1)),
        zstd_level: t
            .zstd_level
            .clamp(c.zstd_level, tune::MAX_ZSTD_LEVEL.max(c.zstd_level)),
        pack_bytes: t
            .pack_bytes
            .clamp(tune::MIN_PACK_BYTES.min(c.pack_bytes), c.pack_bytes),
        nice: t.nice.clamp(c.nice, tune::MAX_NICE.max(c.nice)),
        io_class: match (t.io_class, c.io_class) {
            (IoClass::Idle, _) => IoClass::Idle,
            (_, configured) => configured,
        },
    }
}

/// The services the monitor looks at.
pub struct Handles {
    pub queue: Arc<Queue>,
    pub sources: Arc<Sources>,
    pub repos: Arc<Registry>,
    pub settings: SettingsHandle,
    pub state_dir: PathBuf,
}

struct Inner {
    sampler: sample::Sampler,
    tracker: bottleneck::Tracker,
    calm: tune::Calm,
    /// `perf auto on|off`; `None`: as configured.
    auto: Option<bool>,
    forecasts: Vec<DiskForecast>,
    last_round_ns: i64,
    last_compact_ns: i64,
    next_id: u64,
    /// The baseline of one hour of the day and when it was computed: it reads a week of
    /// samples, and the dashboard asks for it every few seconds.
    baseline: Option<(u32, i64, Option<Baseline>)>,
    /// The samples the disk forecast is fitted on (time and disks only), oldest first.
    recent: std::collections::VecDeque<PerfSample>,
    /// The configured values the tunables were last fitted to: a reload that changes them
    /// refits the tuned values instead of discarding them.
    configured: Tunables,
}

pub struct Perf {
    store: store::Store,
    h: Handles,
    tuning: Tuning,
    inner: Mutex<Inner>,
}

fn since(window: Duration) -> i64 {
    now_ns().saturating_sub(i64::try_from(window.as_nanos()).unwrap_or(i64::MAX))
}

impl Perf {
    /// Opens the history and restores the tuned values (kept within the configuration).
    /// `tuning` is the handle jobs already hold; it gets the restored values.
    pub fn open(state: &State, h: Handles, tuning: Tuning) -> Result<Self, StateError> {
        let store = store::Store::open(state)?;
        let config = configured(&h.settings.get().config);
        let saved = store.tuned();
        let auto = saved
            .as_ref()
            .and_then(|r| r.auto)
            .unwrap_or(h.settings.get().config.perf.auto);
        let tunables = match &saved {
            Some(r) if auto => within(&r.tunables(), &config),
            _ => config.clone(),
        };
        // Bottlenecks left open by a previous run end where its samples ended.
        let tracker = bottleneck::Tracker::default();
        // The last sample stands for its whole span.
        let last = store
            .last_sample()
            .map(|s| s.time_ns + i64::from(s.span_secs) * SEC_NS);
        for mut b in store.bottlenecks(i64::MAX) {
            if b.ended_ns.is_none() {
                b.ended_ns = Some(last.unwrap_or(b.started_ns).max(b.started_ns));
                let _ = store.put_bottleneck(&b);
            }
        }
        let next_id = store.next_bottleneck_id();
        let perf = Self {
            tuning,
            inner: Mutex::new(Inner {
                sampler: sample::Sampler::new(),
                tracker,
                calm: tune::Calm::default(),
                auto: saved.and_then(|r| r.auto),
                forecasts: Vec::new(),
                last_round_ns: now_ns(),
                last_compact_ns: 0,
                next_id,
                baseline: None,
                recent: store
                    .samples(now_ns() - FORECAST_WINDOW_NS)
                    .into_iter()
                    .map(disks_only)
                    .collect(),
                configured: config,
            }),
            store,
            h,
        };
        perf.apply(&tunables);
        Ok(perf)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The handle jobs read the tunables through.
    pub fn tuning(&self) -> Tuning {
        self.tuning.clone()
    }

    fn config(&self) -> PerfConfig {
        self.h.settings.get().config.perf.clone()
    }

    fn auto(&self, inner: &Inner) -> bool {
        inner.auto.unwrap_or_else(|| self.config().auto)
    }

    /// Puts tunables in force: the queue's worker cap now, the rest when jobs start.
    fn apply(&self, t: &Tunables) {
        let configured_workers = self.h.settings.get().config.queue.workers;
        self.h
            .queue
            .set_worker_cap((t.workers < configured_workers).then_some(t.workers));
        self.tuning.set(t.clone());
    }

    /// The file systems worth watching: the state directory, every local repository, every
    /// source.
    fn watched(&self) -> Vec<sample::Watched> {
        let mut paths = vec![sample::Watched {
            path: self.h.state_dir.clone(),
            holds: "state".into(),
        }];
        if let Ok(repos) = self.h.repos.list() {
            for r in repos {
                // An object store's space is not this machine's to sample.
                let Location::Local(path) = &r.location else {
                    continue;
                };
                paths.push(sample::Watched {
                    path: path.clone(),
                    holds: format!("repository {}", r.name),
                });
            }
        }
        for s in self.h.sources.list() {
            use std::os::unix::ffi::OsStrExt;
            paths.push(sample::Watched {
                path: PathBuf::from(std::ffi::OsStr::from_bytes(&s.spec.path)),
                holds: format!("source {}", s.spec.name),
            });
        }
        paths
    }

    /// Takes one sample, stores it, and updates the bottlenecks. Blocking.
    pub fn sample_now(&self) -> PerfSample {
        let c = self.config();
        let (queued, running) = self.h.queue.depth();
        let inputs = sample::Inputs {
            paths: self.watched(),
            queued,
            running,
        };
        let now = now_ns();
        let span = u32::try_from(c.sample_every.as_secs()).unwrap_or(u32::MAX);
        let mut inner = self.lock();
        let s = inner.sampler.sample(&inputs, now, span);
        if let Err(e) = self.store.add_sample(&s) {
            tracing::warn!(error = %e, "cannot store a performance sample");
        }
        inner.recent.push_back(disks_only(s.clone()));
        while inner
            .recent
            .front()
            .is_some_and(|old| old.time_ns < now - FORECAST_WINDOW_NS)
        {
            inner.recent.pop_front();
        }
        inner.forecasts = bottleneck::forecast(inner.recent.make_contiguous());
        let detections = {
            let tracker = &inner.tracker;
            bottleneck::detect(&s, &inner.forecasts, &c, |k, subj| tracker.is_open(k, subj))
        };
        let mut id = inner.next_id;
        let changes = inner.tracker.on_sample(detections, now, || {
            let this = id;
            id += 1;
            this
        });
        inner.next_id = id;
        let mut changes = changes;
        if !self.auto(&inner) {
            // Said where the bottleneck is stored and where it is kept open alike.
            const NOTE: &str = "none: automatic tuning is off (`backupctl perf auto on`)";
            let opened: Vec<u64> = changes.opened.iter().map(|b| b.id).collect();
            for b in inner
                .tracker
                .open
                .iter_mut()
                .filter(|b| opened.contains(&b.id))
            {
                b.actions.push(NOTE.into());
            }
            for b in &mut changes.opened {
                b.actions.push(NOTE.into());
            }
        }
        for b in &changes.opened {
            tracing::warn!(kind = %b.kind, severity = b.severity.as_str(), reason = %b.reason, "bottleneck");
        }
        for b in &changes.ended {
            tracing::info!(kind = %b.kind, subject = %b.subject, "bottleneck ended");
        }
        for b in changes
            .opened
            .iter()
            .chain(&changes.updated)
            .chain(&changes.ended)
        {
            if let Err(e) = self.store.put_bottleneck(b) {
                tracing::warn!(error = %e, "cannot store a bottleneck");
            }
        }
        if now - inner.last_compact_ns >= COMPACT_EVERY_NS {
            inner.last_compact_ns = now;
            let keep = i64::try_from(c.keep.as_nanos()).unwrap_or(i64::MAX);
            let full = i64::try_from(c.keep_full.as_nanos()).unwrap_or(i64::MAX);
            if let Err(e) = self.store.compact(now, keep, full) {
                tracing::warn!(error = %e, "cannot downsample the performance history");
            }
        }
        s
    }

    /// One tuning round over the samples since the previous one. Blocking.
    pub fn optimize(&self, trigger: &str) -> Optimized {
        let c = self.config();
        let configured = configured(&self.h.settings.get().config);
        let now = now_ns();
        let mut inner = self.lock();
        // A manual round right after start looks at the last optimize interval at least.
        let from = inner
            .last_round_ns
            .min(now - i64::try_from(c.optimize_every.as_nanos()).unwrap_or(i64::MAX));
        let samples = self.store.samples(from);
        let warning = i64::try_from(c.disk_full_warning.as_nanos()).unwrap_or(i64::MAX);
        let repo_disks: Vec<(String, bool)> = samples
            .last()
            .map(|s| {
                s.disks
                    .iter()
                    .filter(|d| d.holds.iter().any(|h| h.starts_with("repository ")))
                    .map(|d| {
                        let soon = inner.forecasts.iter().any(|f| {
                            f.path == d.path && f.full_at_ns.is_some_and(|t| t - now <= warning)
                        });
                        (d.path.clone(), soon)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let current = within(&self.tuning.get(), &configured);
        let round = tune::round(
            &current,
            &configured,
            &mut inner.calm,
            &tune::Window {
                samples: &samples,
                repo_disks: &repo_disks,
            },
            &c,
            now,
            trigger,
        );
        inner.last_round_ns = now;
        let tunables = round.tunables.unwrap_or(current);
        if !round.changes.is_empty() {
            for ch in &round.changes {
                tracing::info!(tunable = %ch.tunable, old = %ch.old, new = %ch.new, metric = %ch.metric, reason = %ch.reason, "tuned");
            }
            self.apply(&tunables);
            if let Err(e) = self.store.add_changes(&round.changes) {
                tracing::warn!(error = %e, "cannot record tuning changes");
            }
            self.note_actions(&mut inner, &round.changes);
        }
        self.save(&inner, &tunables);
        Optimized {
            auto: self.auto(&inner),
            changes: round.changes,
            notes: round.notes,
            tunables,
        }
    }

    /// Records on each open bottleneck what the tuner did about it.
    fn note_actions(&self, inner: &mut Inner, changes: &[TuningChange]) {
        for b in &mut inner.tracker.open {
            let prefix = match b.kind {
                BottleneckKind::Cpu => "cpu",
                BottleneckKind::Memory => "memory",
                BottleneckKind::Disk => "repository disk",
                BottleneckKind::Io => "iowait",
            };
            let mine: Vec<String> = changes
                .iter()
                .filter(|ch| ch.metric.starts_with(prefix))
                .map(|ch| format!("{}: {} -> {} ({})", ch.tunable, ch.old, ch.new, ch.reason))
                .collect();
            if !mine.is_empty() {
                b.actions.extend(mine);
                if let Err(e) = self.store.put_bottleneck(b) {
                    tracing::warn!(error = %e, "cannot store a bottleneck");
                }
            }
        }
    }

    fn save(&self, inner: &Inner, t: &Tunables) {
        if let Err(e) = self.store.save_tuned(&TunedRecord::new(t, inner.auto)) {
            tracing::warn!(error = %e, "cannot store the tuned values");
        }
    }

    /// `perf auto on|off`. Turning it off puts the configured values back in force.
    pub fn set_auto(&self, on: bool) -> Optimized {
        let configured = configured(&self.h.settings.get().config);
        let mut inner = self.lock();
        inner.auto = Some(on);
        let mut notes = Vec::new();
        let tunables = if on {
            notes.push("automatic tuning is on: a round runs every perf.optimize_every".into());
            within(&self.tuning.get(), &configured)
        } else {
            inner.calm = tune::Calm::default();
            notes.push("automatic tuning is off: the configured values are in force".into());
            configured
        };
        self.apply(&tunables);
        self.save(&inner, &tunables);
        Optimized {
            auto: on,
            changes: Vec::new(),
            notes,
            tunables,
        }
    }

    /// Follows a reload: when the configured values changed, the tuned values stay, within
    /// the new bounds (with tuning off, the new configured values are in force).
    pub fn follow_config(&self) {
        let configured = configured(&self.h.settings.get().config);
        let mut inner = self.lock();
        if inner.configured == configured {
            return;
        }
        let t = if self.auto(&inner) {
            within(&self.tuning.get(), &configured)
        } else {
            configured.clone()
        };
        tracing::info!(tunables = ?t, "configuration changed; tuned values refitted");
        inner.configured = configured;
        self.apply(&t);
        self.save(&inner, &t);
    }

    pub fn open_bottlenecks(&self) -> Vec<Bottleneck> {
        self.lock().tracker.open.clone()
    }

    pub fn forecasts(&self) -> Vec<DiskForecast> {
        self.lock().forecasts.clone()
    }

    /// `perf current`. Blocking (reads the store).
    pub fn current(&self) -> PerfCurrent {
        let c = self.config();
        let mut inner = self.lock();
        let sample = self.store.last_sample();
        let baseline = sample
            .as_ref()
            .and_then(|s| self.cached_baseline(&mut inner, s.time_ns));
        PerfCurrent {
            sample,
            baseline,
            open_bottlenecks: inner.tracker.open.clone(),
            auto: self.auto(&inner),
            tunables: self.tuning.get(),
            configured: configured(&self.h.settings.get().config),
            sample_interval_ms: c.sample_every.as_millis() as u64,
            optimize_interval_ms: c.optimize_every.as_millis() as u64,
        }
    }

    /// [`Self::baseline`], recomputed when the hour changes or every 10 minutes.
    fn cached_baseline(&self, inner: &mut Inner, at_ns: i64) -> Option<Baseline> {
        use chrono::{Local, TimeZone, Timelike};
        let hour = Local.timestamp_nanos(at_ns).hour();
        match inner.baseline {
            Some((h, at, b)) if h == hour && at_ns - at < BASELINE_REFRESH_NS => b,
            _ => {
                let b = self.baseline(at_ns);
                inner.baseline = Some((hour, at_ns, b));
                b
            }
        }
    }

    /// The median of this hour of the day over the last week.
    fn baseline(&self, at_ns: i64) -> Option<Baseline> {
        use chrono::{Local, TimeZone, Timelike};
        let hour_of = |ns: i64| Local.timestamp_nanos(ns).hour();
        let hour = hour_of(at_ns);
        let of_hour: Vec<PerfSample> = self
            .store
            .samples(at_ns - BASELINE_WINDOW_NS)
            .into_iter()
            .filter(|s| hour_of(s.time_ns) == hour)
            .collect();
        if of_hour.is_empty() {
            return None;
        }
        let median = |f: &dyn Fn(&PerfSample) -> f64| {
            let mut v: Vec<f64> = of_hour.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2] as f32
        };
        Some(Baseline {
            hour: hour as u8,
            samples: of_hour.len() as u32,
            cpu_percent: median(&|s| f64::from(s.cpu_percent)),
            memory_percent: median(&PerfSample::memory_percent),
            iowait_percent: median(&|s| f64::from(s.iowait_percent)),
        })
    }

    /// `perf metrics`: samples of the window, evenly thinned to `max_points`.
    pub fn samples(&self, window: Duration, max_points: u32) -> Vec<PerfSample> {
        let all = self.store.samples(since(window));
        thin(all, max_points as usize)
    }

    pub fn bottlenecks(&self, window: Duration) -> Vec<Bottleneck> {
        self.store.bottlenecks(since(window))
    }

    pub fn history(&self, window: Duration) -> Vec<TuningChange> {
        self.store.changes(since(window))
    }

    /// `perf report`. Blocking.
    pub fn report(&self, window: Duration) -> PerfReport {
        let from = since(window);
        let until = now_ns();
        let samples = self.store.samples(from);
        let bottlenecks = self.store.bottlenecks(from);
        let changes = self.store.changes(from);
        let stat = |f: &dyn Fn(&PerfSample) -> f64| -> Stat {
            if samples.is_empty() {
                return Stat::default();
            }
            let weights: f64 = samples.iter().map(|s| f64::from(s.span_secs.max(1))).sum();
            Stat {
                avg: samples
                    .iter()
                    .map(|s| f(s) * f64::from(s.span_secs.max(1)))
                    .sum::<f64>()
                    / weights,
                peak: samples.iter().map(f).fold(f64::MIN, f64::max),
            }
        };
        let has_pressure = samples.iter().any(|s| s.pressure.is_some());
        let mut bottleneck_ms: Vec<(BottleneckKind, u64)> = BottleneckKind::ALL
            .iter()
            .map(|k| {
                let ms = bottlenecks
                    .iter()
                    .filter(|b| b.kind == *k)
                    .map(|b| {
                        let start = b.started_ns.max(from);
                        let end = b.ended_ns.unwrap_or(until);
                        ((end - start).max(0) / 1_000_000) as u64
                    })
                    .sum();
                (*k, ms)
            })
            .collect();
        bottleneck_ms.retain(|(_, s)| *s > 0);
        let forecasts = self.forecasts();
        let mut report = PerfReport {
            since_ns: from,
            until_ns: until,
            samples: samples.len() as u32,
            cpu_percent: stat(&|s| f64::from(s.cpu_percent)),
            daemon_cpu_percent: stat(&|s| f64::from(s.daemon_cpu_percent)),
            memory_percent: stat(&PerfSample::memory_percent),
            daemon_rss_bytes: stat(&|s| s.daemon_rss_bytes as f64),
            iowait_percent: stat(&|s| f64::from(s.iowait_percent)),
            io_pressure: has_pressure
                .then(|| stat(&|s| s.pressure.map_or(0.0, |p| f64::from(p.io_some)))),
            read_bps: stat(&|s| s.read_bps as f64),
            stored_bps: stat(&|s| s.stored_bps as f64),
            restored_bps: stat(&|s| s.restored_bps as f64),
            queued: stat(&|s| f64::from(s.queued)),
            disks: forecasts,
            bottleneck_ms,
            bottlenecks: bottlenecks.len() as u32,
            tuning_changes: changes.len() as u32,
            recommendations: Vec::new(),
        };
        report.recommendations = recommend(&report, &self.config(), &self.tuning.get());
        report
    }

    /// Samples every `perf.sample_every`, tunes every `perf.optimize_every` when automatic
    /// tuning is on, until `cancel` fires.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            let c = self.config();
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(c.sample_every) => {}
            }
            let me = self.clone();
            let result = tokio::task::spawn_blocking(move || {
                me.follow_config();
                me.sample_now();
                let due = {
                    let inner = me.lock();
                    me.auto(&inner)
                        && now_ns() - inner.last_round_ns
                            >= i64::try_from(c.optimize_every.as_nanos()).unwrap_or(i64::MAX)
                };
                if due {
                    me.optimize("auto");
                }
            })
            .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "the performance monitor's sampling task failed");
            }
        }
    }
}

/// What the disk forecast needs of a sample.
fn disks_only(s: PerfSample) -> PerfSample {
    PerfSample {
        time_ns: s.time_ns,
        disks: s.disks,
        ..Default::default()
    }
}

/// Keeps at most `max` samples, evenly spaced, always the newest (0: all).
fn thin(all: Vec<PerfSample>, max: usize) -> Vec<PerfSample> {
    if max == 0 || all.len() <= max {
        return all;
    }
    let n = all.len();
    let step = n as f64 / max as f64;
    let mut out: Vec<PerfSample> = (0..max)
        .map(|i| all[((i as f64 * step) as usize).min(n - 1)].clone())
        .collect();
    if let (Some(last), Some(newest)) = (out.last_mut(), all.last()) {
        *last = newest.clone();
    }
    out
}

/// What an administrator could change, from a report.
fn recommend(r: &PerfReport, c: &PerfConfig, t: &Tunables) -> Vec<String> {
    let mut out = Vec::new();
    let secs = |k: BottleneckKind| {
        r.bottleneck_ms
            .iter()
            .find(|(kind, _)| *kind == k)
            .map_or(0, |(_, ms)| *ms / 1000)
    };
    let window = ((r.until_ns - r.since_ns) / SEC_NS).max(1) as u64;
    if secs(BottleneckKind::Cpu) * 10 > window {
        out.push(format!(
            "CPU was above {} % for {} of the window: schedule backups outside busy hours \
             (`source set NAME --schedule \"daily 02:00\" --no-watch`) or keep perf.nice high",
            c.cpu_percent,
            humantime::format_duration(Duration::from_secs(secs(BottleneckKind::Cpu)))
        ));
    }
    if secs(BottleneckKind::Memory) > 0 {
        out.push(
            "memory ran short: fewer queue.workers keep fewer packs and buffers in memory".into(),
        );
    }
    if secs(BottleneckKind::Io) * 10 > window {
        out.push(
            "the disks were the bottleneck: set perf.io_class = \"idle\" so backups only use \
             idle disk time"
                .into(),
        );
    }
    for d in &r.disks {
        if d.used_percent > c.disk_percent || d.full_at_ns.is_some() {
            let when = d.full_at_ns.map_or(String::new(), |t| {
                format!(
                    ", full in about {} h",
                    ((t - r.until_ns).max(0) / (3600 * SEC_NS))
                )
            });
            out.push(format!(
                "{} ({}) is {:.0} % full{when}: forget old snapshots and prune, or add space",
                d.path,
                d.holds.join(", "),
                d.used_percent
            ));
        }
    }
    if r.daemon_cpu_percent.avg < 5.0 && r.queued.avg > 1.0 && t.workers < 8 {
        out.push(
            "jobs waited while the daemon used little CPU: more queue.workers would finish \
             them sooner"
                .into(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_the_newest_and_spreads_the_rest() {
        let all: Vec<PerfSample> = (0..100)
            .map(|i| PerfSample {
                time_ns: i,
                ..Default::default()
            })
            .collect();
        let few = thin(all.clone(), 10);
        assert_eq!(few.len(), 10);
        assert_eq!(few[0].time_ns, 0);
        assert_eq!(few[9].time_ns, 99);
        assert_eq!(thin(all.clone(), 0).len(), 100);
        assert_eq!(thin(all, 500).len(), 100);
    }

    #[test]
    fn tuned_values_stay_within_a_new_configuration() {
        let c = Tunables {
            workers: 2,
            threads: 2,
            zstd_level: 1,
            pack_bytes: 16 << 20,
            nice: 10,
            io_class: IoClass::BestEffort(7),
        };
        let tuned = Tunables {
            workers: 4,
            threads: 1,
            zstd_level: 30,
            pack_bytes: 1,
            nice: 5,
            io_class: IoClass::Idle,
        };
        let w = within(&tuned, &c);
        assert_eq!(w.workers, 2);
        assert_eq!(w.threads, 1);
        assert_eq!(w.zstd_level, tune::MAX_ZSTD_LEVEL);
        assert_eq!(w.pack_bytes, tune::MIN_PACK_BYTES);
        assert_eq!(w.nice, 10);
        assert_eq!(w.io_class, IoClass::Idle);
    }
}
