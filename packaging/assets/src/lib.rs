//! What the package installs besides the binaries, generated from the code so it cannot drift:
//! man pages from the clap definitions (`man`) and the config schema (`config_man`), shell
//! completions (`completions`), and the default config.toml (`config_file`).

pub mod completions;
pub mod config_doc;
pub mod config_file;
pub mod config_man;
pub mod man;

use anyhow::Context as _;
use std::path::{Path, PathBuf};

/// Writes everything under `out` (`man/`, `completions/`, `config.toml`); returns the files.
pub fn generate(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    written.extend(man::write_pages(&out.join("man"))?);
    written.push(config_man::write_page(&out.join("man"))?);
    written.extend(completions::write_scripts(&out.join("completions"))?);
    let config = out.join("config.toml");
    std::fs::write(&config, config_file::render()?)
        .with_context(|| format!("cannot write {}", config.display()))?;
    written.push(config);
    Ok(written)
}

/// The date man pages carry: `SOURCE_DATE_EPOCH` (reproducible builds; build-deb.sh sets it to
/// the commit's time) or today.
fn page_date() -> String {
    let now = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|secs| secs.parse::<u64>().ok())
        .map(|secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .unwrap_or_else(std::time::SystemTime::now);
    humantime::format_rfc3339_seconds(now).to_string()[..10].to_owned()
}

/// Creates `dir` and returns it, for the writers.
fn ensure_dir(dir: &Path) -> anyhow::Result<&Path> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
