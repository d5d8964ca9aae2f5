//! A job's own log lines (`backupctl queue log ID`): a tracing layer copies every event that
//! carries a `job` field, or is emitted inside a `job` span, into that job's buffer while the
//! job is open (from the start of an attempt to its end). The worker opens the buffer when an
//! attempt starts and [`take`]s it when the attempt ends, appending the lines to the job record,
//! so they survive a restart. Events of jobs that are not open are ignored: the layer never
//! grows without bound. Only events the daemon's log filter lets through reach it.
//!
//! Bound: a job keeps its last [`MAX_LINES`] lines and at most [`MAX_BYTES`] of text, over all
//! its attempts; older lines are dropped first.

use backupd_common::protocol::JobId;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex, MutexGuard};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Lines a job keeps.
pub const MAX_LINES: usize = 200;
/// Bytes of text a job keeps.
pub const MAX_BYTES: usize = 64 << 10;
/// The longest line kept; a longer one is cut (a path list in one event must not evict
/// everything else).
const MAX_LINE: usize = 4096;

/// The span name whose `id` field marks events as the job's (the worker enters it around an
/// attempt's run).
pub const SPAN: &str = "job";

static OPEN: LazyLock<Mutex<HashMap<JobId, VecDeque<String>>>> = LazyLock::new(Default::default);

fn open_jobs() -> MutexGuard<'static, HashMap<JobId, VecDeque<String>>> {
    // A panic while holding the lock leaves plain lines behind: still usable.
    OPEN.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts collecting job `id`'s lines.
pub fn open(id: JobId) {
    open_jobs().entry(id).or_default();
}

/// Stops collecting and returns what job `id` logged since [`open`].
pub fn take(id: JobId) -> Vec<String> {
    open_jobs().remove(&id).map(Vec::from).unwrap_or_default()
}

/// What open job `id` logged so far (for `queue log` of a running job).
pub fn peek(id: JobId) -> Vec<String> {
    open_jobs()
        .get(&id)
        .map(|l| l.iter().cloned().collect())
        .unwrap_or_default()
}

/// Appends `lines` to `log`, then drops the oldest lines beyond the bound.
pub fn append(log: &mut Vec<String>, lines: impl IntoIterator<Item = String>) {
    log.extend(lines);
    let mut bytes: usize = log.iter().map(String::len).sum();
    let mut drop = log.len().saturating_sub(MAX_LINES);
    for line in &log[..drop] {
        bytes -= line.len();
    }
    while bytes > MAX_BYTES && drop < log.len() {
        bytes -= log[drop].len();
        drop += 1;
    }
    log.drain(..drop);
}

fn push(buffer: &mut VecDeque<String>, line: String) {
    buffer.push_back(line);
    let mut bytes: usize = buffer.iter().map(String::len).sum();
    while buffer.len() > MAX_LINES || bytes > MAX_BYTES {
        match buffer.pop_front() {
            Some(old) => bytes -= old.len(),
            None => break,
        }
    }
}

/// The job id a span was opened with, kept in the span's extensions.
struct SpanJob(JobId);

/// The tracing layer; add it to the daemon's subscriber.
pub struct Layer;

impl<S> tracing_subscriber::Layer<S> for Layer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != SPAN {
            return;
        }
        let mut visitor = JobField::new("id");
        attrs.record(&mut visitor);
        if let (Some(job), Some(span)) = (visitor.job, ctx.span(id)) {
            span.extensions_mut().insert(SpanJob(job));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut visitor = JobField::new("job");
        event.record(&mut visitor);
        let job = visitor.job.or_else(|| {
            ctx.event_scope(event)?
                .find_map(|span| span.extensions().get::<SpanJob>().map(|j| j.0))
        });
        let Some(job) = job else {
            return;
        };
        let mut jobs = open_jobs();
        let Some(buffer) = jobs.get_mut(&job) else {
            return;
        };
        let mut line = format!(
            "{} {:>5} {}",
            crate::repo::format_rfc3339(crate::repo::now_ns()),
            event.metadata().level(),
            visitor.text
        );
        if line.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        push(buffer, line);
    }
}

/// Reads the job id from the field `name` and formats the event as `message k=v ...`.
struct JobField {
    name: &'static str,
    job: Option<JobId>,
    text: String,
}

impl JobField {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            job: None,
            text: String::new(),
        }
    }

    fn add(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.text);
            let _ = write!(self.text, "{value:?}{rest}");
        } else {
            let _ = write!(self.text, " {}={value:?}", field.name());
        }
    }
}

impl Visit for JobField {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == self.name {
            self.job = Some(value);
        }
        self.add(field, &value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == self.name {
            self.job = u64::try_from(value).ok();
        }
        self.add(field, &value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        // Strings without quotes read better; Debug would escape them.
        if field.name() == "message" {
            self.add(field, &format_args!("{value}"));
        } else {
            self.add(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.add(field, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn lines_of_open_jobs_are_kept_by_field_and_by_span_and_bounded() {
        let subscriber = tracing_subscriber::registry().with(Layer);
        tracing::subscriber::with_default(subscriber, || {
            open(901);
            tracing::info!(job = 901u64, "queued");
            tracing::info!(job = 902u64, "not open: ignored");
            tracing::info_span!(SPAN, id = 901u64).in_scope(|| {
                tracing::warn!(path = "/x", "inside the span");
            });
            let lines = peek(901);
            assert_eq!(lines.len(), 2, "{lines:?}");
            assert!(lines[0].contains("INFO queued job=901"), "{lines:?}");
            assert!(
                lines[1].contains("WARN inside the span path=\"/x\""),
                "{lines:?}"
            );
            for i in 0..MAX_LINES + 50 {
                tracing::info!(job = 901u64, i, "line");
            }
            let lines = take(901);
            assert_eq!(lines.len(), MAX_LINES);
            assert!(
                lines.last().is_some_and(|l| l.contains("i=249")),
                "{lines:?}"
            );
            assert!(peek(901).is_empty() && take(902).is_empty());
        });
    }

    #[test]
    fn a_job_record_keeps_its_last_lines_within_the_byte_bound() {
        let mut log = vec!["old".to_owned()];
        append(&mut log, (0..MAX_LINES).map(|i| format!("{i}")));
        assert_eq!(log.len(), MAX_LINES);
        assert_eq!(log[0], "0");
        let big = "x".repeat(MAX_BYTES / 4 + 1);
        append(&mut log, std::iter::repeat_n(big, 4));
        assert_eq!(log.len(), 3, "4 lines of a quarter each exceed the bound");
    }
}
