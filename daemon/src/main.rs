//! backupd's entry point: flags, tracing, signals, the socket; then `backupd::run`.

use anyhow::Context as _;
use backupd::cli::Args;
use backupd::server::listener::{Listener, SocketPermissions};
use backupd::settings::{Overrides, Settings};
use backupd::LogReload;
use backupd_common::protocol::RunMode;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Layer};

/// EX_USAGE: a bad command line, as backupctl reports it.
const EX_USAGE: u8 = 64;

fn main() -> ExitCode {
    backupd::memory::limit_arenas();
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(EX_USAGE),
            };
        }
    };
    if args.check_config {
        return check_config(args.config, args.log_level.as_deref());
    }
    let watch = match watched_dirs(&args.watch) {
        Ok(watch) => watch,
        Err(message) => {
            eprintln!("backupd: {message}");
            return ExitCode::from(EX_USAGE);
        }
    };
    match start(args, watch) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // stderr reaches the journal under systemd, so this is the one report.
            eprintln!("backupd: {e:#}");
            ExitCode::from(exit_code_for(&e))
        }
    }
}

/// EX_CONFIG (78) for configuration mistakes and EX_CANTCREAT (73) for a state directory the
/// daemon cannot use (not creatable or writable, a database newer than this backupd, a corrupt
/// one that cannot be moved aside) or a socket directory another user controls, so systemd's `RestartPreventExitStatus=78 73` stops
/// restarting a daemon that cannot start until an administrator acts; 1 otherwise.
fn exit_code_for(error: &anyhow::Error) -> u8 {
    use backupd::error::Error;
    use backupd::server::listener::ListenError;
    use backupd_common::config::ConfigError;
    let config_mistake = error.chain().any(|cause| {
        cause.is::<ConfigError>()
            || matches!(cause.downcast_ref(), Some(Error::Config(_)))
            || matches!(cause.downcast_ref(), Some(ListenError::NoSuchGroup { .. }))
    });
    let state_unusable = error.chain().any(|cause| {
        matches!(cause.downcast_ref(), Some(ListenError::UnsafeDirectory { .. }))
            || matches!(cause.downcast_ref(), Some(Error::State(e)) if e.needs_admin())
            || matches!(cause.downcast_ref::<backupd::state::StateError>(), Some(e) if e.needs_admin())
    });
    if config_mistake {
        78
    } else if state_unusable {
        73
    } else {
        1
    }
}

/// `--watch` arguments as absolute directories, or the usage error naming the bad one.
fn watched_dirs(args: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut watch = Vec::new();
    for dir in args {
        let abs = std::path::absolute(dir)
            .map_err(|e| format!("--watch {}: cannot resolve the path: {e}", dir.display()))?;
        if !abs.is_dir() {
            return Err(format!(
                "--watch {}: not a directory (or not accessible); give an existing directory \
                 to back up (e.g. `mkdir -p {}` first)",
                dir.display(),
                dir.display()
            ));
        }
        watch.push(abs);
    }
    Ok(watch)
}

fn check_config(path: Option<PathBuf>, log_level: Option<&str>) -> ExitCode {
    if let Some(level) = log_level {
        if let Err(message) = backupd_common::config::check_log_level(level) {
            eprintln!("backupd: --log-level {level:?}: {message}");
            return ExitCode::from(2);
        }
    }
    let path = match path {
        Some(path) => path,
        None => {
            let default = backupd_common::paths::DefaultPaths::for_mode(
                backupd_common::paths::current_mode(),
            )
            .config_file;
            if !default.exists() {
                println!(
                    "config OK: no file at {}; the embedded defaults apply",
                    default.display()
                );
                return ExitCode::SUCCESS;
            }
            default
        }
    };
    match backupd::settings::check_file(&path) {
        Ok(_) => {
            println!("config OK: {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("backupd: {e}");
            ExitCode::from(2)
        }
    }
}

fn start(args: Args, watch: Vec<PathBuf>) -> anyhow::Result<()> {
    let settings = Settings::resolve(Overrides {
        config_file: args.config,
        socket: args.socket,
        state_dir: args.state_dir,
        log_level: args.log_level,
        watch,
    })?;
    let log_reload = init_tracing(&settings.log_level).map_err(|message| {
        backupd_common::config::ConfigError::Invalid {
            path: settings
                .config_file
                .clone()
                .unwrap_or_else(|| PathBuf::from("--log-level")),
            key: "daemon.log_level".to_owned(),
            message: format!("is {:?}: {message}", settings.log_level),
        }
    })?;
    raise_fd_limit();

    // Adopt or bind before the runtime exists: still single-threaded (see listener.rs).
    let listener = match Listener::from_activation()? {
        Some(l) => {
            if l.path() != settings.socket {
                tracing::info!(
                    activated = %l.path().display(),
                    configured = %settings.socket.display(),
                    "using the socket systemd passed in instead of the configured path"
                );
            }
            l
        }
        None => Listener::bind(&settings.socket, &socket_permissions(&settings))?,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("backupd")
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async move {
        let cancel = CancellationToken::new();
        tokio::spawn(stop_on_signals(cancel.clone()));
        backupd::run(settings, listener, cancel, Some(log_reload)).await
    });
    // `run` has drained within the grace period (or given up on what still runs, with its
    // jobs queued again). Dropping the runtime would wait for blocking threads for ever (one
    // stuck in a read on a hung file system, say): the process exits regardless.
    runtime.shutdown_timeout(Duration::from_millis(500));
    result?;
    Ok(())
}

fn socket_permissions(settings: &Settings) -> SocketPermissions {
    let configured = settings.config.server.socket_group.clone();
    let group_required = configured.is_some();
    let group = configured.or_else(|| match settings.mode {
        RunMode::System => Some("backupd".to_owned()),
        RunMode::User => None,
    });
    SocketPermissions {
        mode: settings.socket_mode(),
        group,
        group_required,
    }
}

/// SIGTERM/SIGINT start a graceful stop; a second one while stopping exits at once.
async fn stop_on_signals(cancel: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!(
            "cannot install SIGTERM/SIGINT handlers; stop with `backupctl system shutdown`"
        );
        return;
    };
    let mut seen = 0;
    loop {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
        seen += 1;
        if seen > 1 {
            tracing::warn!("second stop signal: exiting without waiting for the drain");
            std::process::exit(1);
        }
        cancel.cancel();
    }
}

fn init_tracing(level: &str) -> Result<LogReload, String> {
    let filter = EnvFilter::try_new(level)
        .map_err(|e| format!("{e}; try `info`, `debug` or `backupd=debug,info`"))?;
    let (filter, handle) = reload::Layer::new(filter);
    // journald stamps every line itself and shows no colours; a file or pipe (nohup.out, a
    // log collector) would keep the escape codes as noise.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let colour = !journald
        && std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let output = if journald {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .without_time()
            .boxed()
    } else {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(colour)
            .boxed()
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        // Copies each job's events into its record (`backupctl queue log ID`).
        .with(backupd::queue::joblog::Layer)
        .try_init()
        .map_err(|e| format!("cannot initialise logging: {e}"))?;
    Ok(Box::new(move |level: &str| {
        let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    }))
}

/// Each connection is a file descriptor; lift the soft limit to the hard one.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::debug!(error = %e, "cannot raise RLIMIT_NOFILE");
            }
        }
    }
}
