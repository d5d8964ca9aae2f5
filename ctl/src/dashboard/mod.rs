//! `backupctl dashboard`: a full-screen view of the daemon that refreshes every `--interval`.
//!
//! `fetch` gathers one [`fetch::View`] from the daemon, `draw` and `panels` render a view and
//! nothing else; this file owns the terminal and the loop. The refresh runs as its own task
//! and hands each view over a watch channel, so keys are answered at once even while the
//! daemon is slow or gone. The loop ends on `q`, Esc, Ctrl-C (a key in raw mode), SIGINT,
//! SIGTERM or SIGHUP (the ssh session went away). The terminal is put back (raw mode off,
//! alternate screen left, cursor shown) by a guard on every way out: a normal end, an error
//! (`?`), and a panic, whose hook restores the terminal before the message is printed so that
//! the message is readable.

pub mod draw;
pub mod fetch;
pub mod panels;

use crate::cli::{Cli, DashboardArgs};
use crate::commands::Failure;
use crate::exit::ExitCode;
use crate::output::Output;
use crossterm::event::{Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use futures::StreamExt;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use std::io::{IsTerminal, Stdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use tokio::signal::unix::{signal, SignalKind};

/// Said when stdout is not a terminal (a pipe, a file, cron): there is no screen to draw on.
pub const NEEDS_TERMINAL: &str = "dashboard needs a terminal; use `backupctl system health \
                                  --watch` or `perf current` in scripts";
/// Said for `--json`: the dashboard is a screen, not an interface.
pub const NO_JSON: &str = "dashboard has no --json output (it is an interactive screen); use \
                           `backupctl --json system health` or `perf current` in scripts";

pub async fn run(cli: &Cli, args: &DashboardArgs, out: &Output) -> Result<ExitCode, Failure> {
    if out.is_json() {
        return Err(Failure::Usage(NO_JSON.into()));
    }
    if !std::io::stdout().is_terminal() {
        return Err(Failure::Usage(NEEDS_TERMINAL.into()));
    }
    let socket = cli
        .socket
        .clone()
        .unwrap_or_else(backupd_common::paths::client_socket);
    let mut fetcher = fetch::Fetcher::new(socket, cli.socket_owner, args.interval);
    let (views, mut latest) = tokio::sync::watch::channel(fetch::View::connecting(args.interval));
    let interval = args.interval;
    let refresher = tokio::spawn(async move {
        // Not an `interval` timer: a slow refresh must not be followed by a burst of them.
        loop {
            if views.send(fetcher.refresh().await).is_err() {
                return;
            }
            tokio::time::sleep(interval).await;
        }
    });
    let ended = show(&mut latest).await;
    refresher.abort();
    match ended? {
        End::Asked => Ok(ExitCode::Ok),
        // The refresh loop never returns while the screen listens: it panicked (the hook has
        // printed why, after restoring the terminal).
        End::RefreshFailed => match refresher.await {
            Err(e) if e.is_panic() => Err(Failure::Local("dashboard: the refresh failed".into())),
            _ => Ok(ExitCode::Ok),
        },
    }
}

/// Why the screen closed.
enum End {
    /// A key or a signal.
    Asked,
    RefreshFailed,
}

/// Draws every new view until a key or a signal ends the dashboard.
async fn show(latest: &mut tokio::sync::watch::Receiver<fetch::View>) -> Result<End, Failure> {
    let local = |what: &str, e: std::io::Error| Failure::Local(format!("dashboard: {what}: {e}"));
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| local("SIGINT", e))?;
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| local("SIGTERM", e))?;
    let mut hangup = signal(SignalKind::hangup()).map_err(|e| local("SIGHUP", e))?;
    let mut screen = Screen::enter().map_err(|e| local("cannot set up the terminal", e))?;
    let mut keys = EventStream::new();
    loop {
        let view = latest.borrow_and_update().clone();
        screen
            .terminal
            .draw(|frame| draw::draw(frame, &view))
            .map_err(|e| local("cannot draw", e))?;
        tokio::select! {
            changed = latest.changed() => {
                if changed.is_err() {
                    return Ok(End::RefreshFailed);
                }
            }
            event = keys.next() => match event {
                Some(Ok(Event::Key(key))) if quits(&key) => return Ok(End::Asked),
                // Resizes and other keys: drawn again (at the new size) with the same view.
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(local("cannot read the keyboard", e)),
                None => return Ok(End::Asked),
            },
            _ = interrupt.recv() => return Ok(End::Asked),
            _ = terminate.recv() => return Ok(End::Asked),
            _ = hangup.recv() => return Ok(End::Asked),
        }
    }
}

/// `q`, Esc and Ctrl-C end the dashboard.
fn quits(key: &KeyEvent) -> bool {
    if key.kind != KeyEventKind::Press {
        return false;
    }
    match key.code {
        KeyCode::Char('q' | 'Q') | KeyCode::Esc => true,
        KeyCode::Char('c') => key.modifiers.contains(KeyModifiers::CONTROL),
        _ => false,
    }
}

/// The terminal in raw mode on the alternate screen; put back when dropped.
struct Screen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Screen {
    fn enter() -> std::io::Result<Self> {
        install_panic_hook();
        terminal::enable_raw_mode()?;
        TAKEN.store(true, Ordering::SeqCst);
        // From here on a failure must undo what was done: `restore` undoes all of it and
        // each step is harmless when it was not done.
        let entered = crossterm::execute!(
            std::io::stdout(),
            EnterAlternateScreen,
            crossterm::cursor::Hide
        )
        .and_then(|()| Terminal::new(CrosstermBackend::new(std::io::stdout())));
        match entered {
            Ok(terminal) => Ok(Self { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Whether the terminal is ours (raw, alternate screen) and not yet given back.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// Raw mode off, alternate screen left, cursor shown; once. The panic hook and the guard's drop
/// both call it on a panic, and leaving the alternate screen a second time would move the
/// cursor back to where it was when the dashboard started, over the panic message.
fn restore() {
    if !TAKEN.swap(false, Ordering::SeqCst) {
        return;
    }
    let _ = terminal::disable_raw_mode();
    let _ = crossterm::execute!(
        std::io::stdout(),
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

/// Restores the terminal before the previous hook prints the panic, so that the message lands
/// on the normal screen in cooked mode instead of vanishing with the alternate screen.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

#[cfg(test)]
mod tests;
