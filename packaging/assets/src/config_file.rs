//! The packaged /etc/backupd/config.toml: every key commented out at its embedded default, with
//! its description, so the file as installed changes nothing and every setting is one `#` away.
//! Plain tables keep their header (an empty table is the defaults); `[[…]]` tables stay commented
//! as a template, since they have no default.

use crate::config_doc::{config_tree, Key, Table};

const WIDTH: usize = 96;

pub fn render() -> anyhow::Result<String> {
    let tree = config_tree()?;
    let mut out = String::new();
    out.push_str(&format!(
        "\
# backupd configuration (/etc/backupd/config.toml), generated from backupd {}'s config schema.
#
# Every key is shown commented out at its embedded default: without changes this file is the same
# as no file. Uncomment what you change, check with `backupd --check-config`, apply with
# `systemctl reload backupd`. Unknown keys are errors. backupd.toml(5) describes every key.
# Durations are written like \"30s\", \"10m\", \"2h 30m\", \"7d\".
",
        env!("CARGO_PKG_VERSION")
    ));
    for key in &tree.keys {
        out.push('\n');
        render_key(&mut out, key, "");
    }
    for table in &tree.tables {
        render_table(&mut out, table, false);
    }
    Ok(out)
}

/// Inside a `[[…]]` template (`in_template`) sub-tables are commented out too: uncommented, they
/// would turn the array into a table.
fn render_table(out: &mut String, table: &Table, in_template: bool) {
    out.push('\n');
    let in_template = in_template || table.array;
    let marker = if in_template { "#" } else { "" };
    comment(out, &table.doc, "# ");
    if table.array {
        comment(
            out,
            "Not set by default; write one such table per item. A template:",
            "# ",
        );
    }
    out.push_str(&format!("{marker}{}\n", table.header()));
    for key in &table.keys {
        render_key(out, key, marker);
    }
    for sub in &table.tables {
        render_table(out, sub, in_template);
    }
}

/// `prefix` is `#` inside a commented template: a key that has no default is then written with
/// a placeholder, which is not valid until filled in.
fn render_key(out: &mut String, key: &Key, prefix: &str) {
    comment(out, &key.doc, &format!("{prefix}# "));
    match (&key.default, key.required) {
        (Some(value), _) => out.push_str(&format!("#{} = {}\n", key.name, inline(value))),
        (None, true) => out.push_str(&format!(
            "#{} = {}  # required ({})\n",
            key.name,
            placeholder(&key.kind),
            key.kind
        )),
        (None, false) => out.push_str(&format!(
            "{prefix}# {} ({}): not set by default\n",
            key.name, key.kind
        )),
    }
}

/// An empty value of the key's kind, to be filled in, in a template.
fn placeholder(kind: &str) -> &'static str {
    match kind {
        "integer" | "number" => "0",
        "boolean" => "false",
        k if k.starts_with("list") => "[]",
        _ => "\"\"",
    }
}

/// A value as TOML writes it inline (`"30s"`, `2`, `["a", "b"]`).
fn inline(value: &toml::Value) -> String {
    match value {
        toml::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(inline).collect();
            format!("[{}]", items.join(", "))
        }
        toml::Value::Table(table) => {
            let pairs: Vec<String> = table
                .iter()
                .map(|(k, v)| format!("{k} = {}", inline(v)))
                .collect();
            format!("{{ {} }}", pairs.join(", "))
        }
        other => other.to_string(),
    }
}

/// `text` as comment lines of at most `WIDTH` columns, paragraphs kept apart by a bare `#`.
fn comment(out: &mut String, text: &str, lead: &str) {
    for (i, paragraph) in text.split("\n\n").enumerate() {
        if i > 0 {
            out.push_str(lead.trim_end());
            out.push('\n');
        }
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && lead.len() + line.len() + 1 + word.len() > WIDTH {
                out.push_str(&format!("{lead}{line}\n"));
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if !line.is_empty() {
            out.push_str(&format!("{lead}{line}\n"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backupd_common::config::Config;

    /// The file as installed is the embedded defaults.
    #[test]
    fn packaged_file_is_the_defaults() {
        let text = render().expect("render");
        let parsed: Config = toml::from_str(&text).expect("the packaged file parses");
        assert_eq!(parsed, Config::default());
    }

    /// Uncommenting every key line of the plain tables gives the defaults again: the values
    /// shown are the real defaults, written so that the daemon reads them back.
    #[test]
    fn every_uncommented_default_reads_back_as_the_default() {
        let text = render().expect("render");
        let mut in_template = false;
        let mut uncommented = 0;
        let lines: Vec<String> = text
            .lines()
            .map(|line| {
                if line.starts_with("#[") {
                    in_template = true;
                } else if line.starts_with('[') {
                    in_template = false;
                }
                let key_line = line.starts_with('#')
                    && line[1..].starts_with(|c: char| c.is_ascii_lowercase())
                    && line.contains(" = ");
                if key_line && !in_template {
                    uncommented += 1;
                    line[1..].to_owned()
                } else {
                    line.to_owned()
                }
            })
            .collect();
        assert!(uncommented > 60, "only {uncommented} keys shown");
        let parsed: Config = toml::from_str(&lines.join("\n")).expect("uncommented file parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn every_key_has_its_description() {
        let text = render().expect("render");
        assert!(text.contains("# Jobs run at once"), "{text}");
        assert!(text.contains("#workers = 2\n"));
        assert!(text.contains("\n#[[source]]\n"));
        assert!(
            text.contains("#path = \"\"  # required (string)\n"),
            "{text}"
        );
        assert!(
            text.lines().all(|l| l.len() <= WIDTH + 40),
            "a line is far too long"
        );
    }
}
