//! `backupd-assets OUTDIR`: writes the man pages, shell completions and default config.toml the
//! package installs (packaging/build-deb.sh runs it after building the binaries).

use anyhow::Context as _;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let out = match (args.next(), args.next()) {
        (Some(out), None) if out != "--help" && out != "-h" => PathBuf::from(out),
        _ => anyhow::bail!("usage: backupd-assets OUTDIR (writes man/, completions/, config.toml)"),
    };
    let written = backupd_assets::generate(&out)
        .with_context(|| format!("cannot generate the package's assets in {}", out.display()))?;
    eprintln!(
        "backupd-assets: {} files in {}",
        written.len(),
        out.display()
    );
    Ok(())
}
