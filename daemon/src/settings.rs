//! Resolves what the daemon runs with: flags win over the config file, the file over the
//! embedded defaults of the run mode.

use backupd_common::config::{check_log_level, parse_mode, Config, ConfigError};
use backupd_common::paths::{current_mode, DefaultPaths};
use backupd_common::protocol::RunMode;
use std::path::{Path, PathBuf};

/// Values given on the command line; they override the config file, also across reloads.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub log_level: Option<String>,
    /// `--watch DIR`: watched sources of the default repository for this run.
    pub watch: Vec<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub mode: RunMode,
    /// The file the config came from; `None` when running on embedded defaults.
    pub config_file: Option<PathBuf>,
    pub config: Config,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub log_level: String,
    pub overrides: Overrides,
}

const DEFAULT_LOG_LEVEL: &str = "info";

impl Settings {
    /// Reads the config file (`--config`, else the mode's default file if it exists, else none)
    /// and applies the overrides.
    pub fn resolve(overrides: Overrides) -> Result<Self, ConfigError> {
        let mode = current_mode();
        let defaults = DefaultPaths::for_mode(mode);
        let (config_file, config) = load_config(&overrides, &defaults)?;
        if let Some(level) = &overrides.log_level {
            check_log_level(level).map_err(|message| ConfigError::Flag {
                flag: "--log-level",
                value: level.clone(),
                message,
            })?;
        }
        Ok(Self::assemble(
            mode,
            &defaults,
            config_file,
            config,
            overrides,
        ))
    }

    fn assemble(
        mode: RunMode,
        defaults: &DefaultPaths,
        config_file: Option<PathBuf>,
        config: Config,
        overrides: Overrides,
    ) -> Self {
        let socket = overrides
            .socket
            .clone()
            .or_else(|| config.daemon.socket.clone())
            .unwrap_or_else(|| defaults.socket.clone());
        let state_dir = overrides
            .state_dir
            .clone()
            .or_else(|| config.daemon.state_dir.clone())
            .unwrap_or_else(|| defaults.state_dir.clone());
        let log_level = overrides
            .log_level
            .clone()
            .or_else(|| config.daemon.log_level.clone())
            .unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_owned());
        Self {
            mode,
            config_file,
            config,
            socket: absolute(socket),
            state_dir: absolute(state_dir),
            log_level,
            overrides,
        }
    }

    /// Re-reads the config file for a reload; flags still win.
    pub fn reloaded(&self) -> Result<Self, ConfigError> {
        let defaults = DefaultPaths::for_mode(self.mode);
        let (config_file, config) = load_config(&self.overrides, &defaults)?;
        Ok(Self::assemble(
            self.mode,
            &defaults,
            config_file,
            config,
            self.overrides.clone(),
        ))
    }

    /// Socket permission bits: configured, else 0600 (user mode) or 0660 (system mode).
    pub fn socket_mode(&self) -> u32 {
        self.config
            .server
            .socket_mode
            .as_deref()
            .and_then(parse_mode)
            .unwrap_or(match self.mode {
                RunMode::User => 0o600,
                RunMode::System => 0o660,
            })
    }
}

fn load_config(
    overrides: &Overrides,
    defaults: &DefaultPaths,
) -> Result<(Option<PathBuf>, Config), ConfigError> {
    match &overrides.config_file {
        Some(path) => Ok((Some(absolute(path.clone())), check_file(path)?)),
        None if defaults.config_file.exists() => Ok((
            Some(defaults.config_file.clone()),
            check_file(&defaults.config_file)?,
        )),
        None => Ok((None, Config::default())),
    }
}

fn absolute(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        return path;
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(&path))
        .unwrap_or(path)
}

/// Reads a config file the way `--check-config` checks it: parse and validate, including the
/// exclude globs of `[[source]]` tables, which only the daemon's matcher can judge.
pub fn check_file(path: &Path) -> Result<Config, ConfigError> {
    let config = Config::load(path)?;
    for (i, source) in config.sources.iter().enumerate() {
        if let Err(e) = crate::engine::excludes::Excludes::new(&source.excludes, &[]) {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                key: format!("source[{}].excludes", i + 1),
                message: e.to_string(),
            });
        }
    }
    Ok(config)
}
