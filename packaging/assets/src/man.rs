//! backupd(8), backupctl(1) and one page per backupctl subcommand (`backupctl-repo-init(1)`, as
//! git does), rendered by clap_mangen from the clap definitions the binaries parse.

use crate::ensure_dir;
use anyhow::Context as _;
use clap::CommandFactory as _;
use std::path::{Path, PathBuf};

const MANUAL: &str = "backupd manual";

pub fn write_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = ensure_dir(dir)?;
    let mut written = Vec::new();
    let daemon = backupd::cli::Args::command();
    written.push(write_page(
        daemon,
        "8",
        dir,
        "backupctl(1), backupd.toml(5), systemctl(1)",
    )?);
    let mut ctl = backupctl::cli::Cli::command().disable_help_subcommand(true);
    ctl.build();
    write_tree(&ctl, dir, &mut written)?;
    Ok(written)
}

/// The command's page and, depth first, its subcommands' pages.
fn write_tree(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let subcommands: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| format!("{}(1)", page_name(s)))
        .collect();
    let mut see_also = vec!["backupd(8)".to_owned(), "backupd.toml(5)".to_owned()];
    if let Some(parent) = page_name(cmd).rsplit_once('-').map(|(p, _)| p.to_owned()) {
        see_also.insert(0, format!("{parent}(1)"));
    }
    see_also.extend(subcommands);
    written.push(write_page(cmd.clone(), "1", dir, &see_also.join(", "))?);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_tree(sub, dir, written)?;
    }
    Ok(())
}

/// `backupctl-repo-init`: clap's display name once the command is built.
fn page_name(cmd: &clap::Command) -> String {
    cmd.get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_owned()
}

fn write_page(
    cmd: clap::Command,
    section: &str,
    dir: &Path,
    see_also: &str,
) -> anyhow::Result<PathBuf> {
    let man = clap_mangen::Man::new(cmd)
        .section(section)
        .manual(MANUAL)
        .date(crate::page_date())
        .source(format!("backupd {}", env!("CARGO_PKG_VERSION")));
    let mut page = Vec::new();
    man.render(&mut page)?;
    let mut roff = roff::Roff::new();
    roff.control("SH", ["SEE ALSO"])
        .text([roff::roman(see_also)]);
    page.extend_from_slice(roff.render().as_bytes());
    let path = dir.join(man.get_filename());
    std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_has_a_page_that_names_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pages = write_pages(dir.path()).expect("pages");
        let names: Vec<String> = pages
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        for want in [
            "backupd.8",
            "backupctl.1",
            "backupctl-repo.1",
            "backupctl-repo-init.1",
            "backupctl-restore.1",
            "backupctl-recovery-plan.1",
        ] {
            assert!(
                names.contains(&want.to_owned()),
                "{want} missing: {names:?}"
            );
        }
        // Every subcommand at every depth has its page.
        let mut cmd = backupctl::cli::Cli::command().disable_help_subcommand(true);
        cmd.build();
        let mut stack = vec![cmd];
        while let Some(cmd) = stack.pop() {
            let page = format!("{}.1", page_name(&cmd));
            assert!(names.contains(&page), "no page {page}");
            stack.extend(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
        }
        let init = std::fs::read_to_string(dir.path().join("backupctl-repo-init.1")).expect("read");
        assert!(init.contains(".TH backupctl-repo-init 1"), "{init}");
        assert!(init.contains("backupctl(1)") || init.contains("backupctl\\-repo(1)"));
        let daemon = std::fs::read_to_string(dir.path().join("backupd.8")).expect("read");
        assert!(
            daemon.contains("check\\-config"),
            "backupd(8) lists its flags"
        );
    }
}
