//! backupd.toml(5): every table and key of the config file with its kind, default and
//! description, rendered from the config schema (the same tree as the packaged config.toml).

use crate::config_doc::{config_tree, Key, Table};
use crate::ensure_dir;
use anyhow::Context as _;
use roff::{bold, italic, roman, Roff};
use std::path::{Path, PathBuf};

const DESCRIPTION: &[&str] = &[
    "backupd reads one TOML file at start and again on SIGHUP (systemctl reload backupd). Every \
     key has an embedded default, so the daemon runs without a file and a file needs only the keys \
     it changes. An unknown key, a value of the wrong kind or one out of range is an error that \
     names the key: backupd refuses to start with it (exit status 78), and a reload with it keeps \
     the running configuration.",
    "Check a file before using it with backupd --check-config --config FILE (exit status 0 valid, \
     2 invalid). The packaged /etc/backupd/config.toml shows every key commented out at its \
     default.",
    "Durations are strings such as \"30s\", \"10m\", \"2h 30m\" or \"7d\". Schedules (the \
     [maintenance] keys, a source's schedule) are calendar expressions such as \"daily 04:00\", \
     \"weekly Sun 03:00\", or cron lines.",
];

/// A file the page shows; a test checks that backupd accepts it.
const EXAMPLE: &str = "\
[queue]
workers = 2

[[repository]]
name = \"main\"
path = \"/srv/backup/main\"
key_file = \"/etc/backupd/main.key\"

[[source]]
path = \"/home\"
repo = \"main\"
keep_daily = 7
keep_weekly = 4";

pub fn write_page(dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = ensure_dir(dir)?;
    let path = dir.join("backupd.toml.5");
    std::fs::write(&path, render()?).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

pub fn render() -> anyhow::Result<String> {
    let tree = config_tree()?;
    let mut page = Roff::new();
    page.control(
        "TH",
        [
            "backupd.toml",
            "5",
            &crate::page_date(),
            &format!("backupd {}", env!("CARGO_PKG_VERSION")),
            "backupd manual",
        ],
    );
    page.control("SH", ["NAME"]).text([roman(
        "backupd.toml - configuration file of the backupd backup daemon",
    )]);
    page.control("SH", ["SYNOPSIS"])
        .text([bold("/etc/backupd/config.toml")])
        .control("br", [] as [&str; 0])
        .text([italic("$XDG_CONFIG_HOME"), bold("/backupd/config.toml")]);
    page.control("SH", ["DESCRIPTION"]);
    for paragraph in DESCRIPTION {
        page.control("PP", [] as [&str; 0])
            .text([roman(*paragraph)]);
    }
    page.control("PP", [] as [&str; 0]).text([roman(
        "The first path is the system daemon's (root); the second a user's daemon's, with \
         ~/.config for an unset XDG_CONFIG_HOME. The --config option and the BACKUPD_CONFIG \
         environment variable name another file.",
    )]);
    if !tree.keys.is_empty() {
        page.control("SH", ["TOP-LEVEL KEYS"]);
        for key in &tree.keys {
            render_key(&mut page, key);
        }
    }
    page.control("SH", ["TABLES"]);
    for table in tree.walk().into_iter().skip(1) {
        render_table(&mut page, table);
    }
    page.control("SH", ["EXAMPLE"]);
    page.control("PP", [] as [&str; 0]).text([roman(
        "Two workers, a repository and a watched source backed up into it, kept 7 daily and 4 \
         weekly snapshots. Under the shipped systemd unit a repository outside /var/lib/backupd \
         must also be made writable with a ReadWritePaths= drop-in (OPERATIONS.md, \"Restore \
         targets and repository locations\").",
    )]);
    page.control("PP", [] as [&str; 0])
        .control("nf", [] as [&str; 0]);
    page.text([roman(EXAMPLE)]);
    page.control("fi", [] as [&str; 0]);
    page.control("SH", ["SEE ALSO"]).text([roman(
        "backupd(8), backupctl(1), /usr/share/doc/backupd/OPERATIONS.md",
    )]);
    Ok(page.render())
}

fn render_table(page: &mut Roff, table: &Table) {
    page.control("SS", [table.header().as_str()]);
    for paragraph in table.doc.split("\n\n").filter(|p| !p.is_empty()) {
        page.control("PP", [] as [&str; 0])
            .text(marked_up(paragraph));
    }
    for key in &table.keys {
        render_key(page, key);
    }
}

fn render_key(page: &mut Roff, key: &Key) {
    let default = match (&key.default, key.required) {
        (Some(value), _) => format!("default {value}"),
        (None, true) => "required".to_owned(),
        (None, false) => "not set by default".to_owned(),
    };
    page.control("TP", [] as [&str; 0]).text([
        bold(key.name.as_str()),
        roman(format!(" ({}, {default})", key.kind)),
    ]);
    for (i, paragraph) in key.doc.split("\n\n").enumerate() {
        if i > 0 {
            page.control("IP", [] as [&str; 0]);
        }
        page.text(marked_up(paragraph));
    }
}

/// A doc comment's `code` spans in bold, the rest roman, as man pages set literal text.
fn marked_up(text: &str) -> Vec<roff::Inline> {
    text.split('`')
        .enumerate()
        .filter(|(_, part)| !part.is_empty())
        .map(|(i, part)| if i % 2 == 1 { bold(part) } else { roman(part) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_documents_tables_keys_and_defaults() {
        let page = render().expect("render");
        assert!(page.contains("\n.TH backupd.toml 5 "), "{page}");
        assert!(page.contains(".SS [queue]"), "{page}");
        assert!(page.contains(".SS [[source]]"), "{page}");
        assert!(
            page.contains("\\fBworkers\\fR (integer, default 2)"),
            "{page}"
        );
        assert!(
            page.contains("\\fBaging\\fR (duration, default \"10m\")"),
            "{page}"
        );
        assert!(page.contains("Jobs run at once"), "{page}");
        assert!(
            !page.contains('`'),
            "code spans are set in bold, not backticks"
        );
    }

    #[test]
    fn the_example_is_a_valid_file() {
        let path = Path::new("backupd.toml(5)");
        let config = backupd_common::config::Config::parse(EXAMPLE, path).expect("parses");
        config.validate(path).expect("valid");
        assert_eq!(config.sources.len(), 1);
    }
}
