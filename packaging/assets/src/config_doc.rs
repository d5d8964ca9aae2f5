//! The config file as a documented tree of tables and keys: names, kinds and descriptions from the
//! config schema (the fields' doc comments), defaults from `Config::default()` as the daemon
//! writes it. backupd.toml(5) and the packaged config.toml are both rendered from this tree.

use anyhow::{anyhow, bail, Context as _};
use backupd_common::config::Config;
use serde_json::{Map, Value};

/// A `[table]` or `[[array-of-tables]]` of the file.
#[derive(Debug)]
pub struct Table {
    /// Dotted path from the top (`queue.timeouts`); empty for the file itself.
    pub path: String,
    /// `[[path]]`: written any number of times, every key without a default of its own.
    pub array: bool,
    pub doc: String,
    pub keys: Vec<Key>,
    pub tables: Vec<Table>,
}

#[derive(Debug)]
pub struct Key {
    pub name: String,
    /// `string`, `duration`, `integer`, `number`, `boolean`, `list of strings`, ...
    pub kind: String,
    pub doc: String,
    /// As the embedded defaults have it; `None`: not set unless the file sets it.
    pub default: Option<toml::Value>,
    /// Must be written (only inside array tables: the top-level tables all have defaults).
    pub required: bool,
}

impl Table {
    /// The header line that opens this table in the file.
    pub fn header(&self) -> String {
        if self.array {
            format!("[[{}]]", self.path)
        } else {
            format!("[{}]", self.path)
        }
    }

    /// Every table below this one, depth first, this one included.
    pub fn walk(&self) -> Vec<&Table> {
        let mut all = vec![self];
        for t in &self.tables {
            all.extend(t.walk());
        }
        all
    }
}

/// The documented tree of the whole file.
pub fn config_tree() -> anyhow::Result<Table> {
    let schema = schemars::schema_for!(Config);
    let root = schema.as_value().clone();
    let defs = root
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let defaults = toml::Value::try_from(Config::default())
        .context("cannot serialise the embedded default config")?;
    let reader = Reader { defs };
    let tree = reader.table(&root, "", false, Some(&defaults))?;
    let undocumented: Vec<String> = tree
        .walk()
        .into_iter()
        .flat_map(|t| t.keys.iter().map(move |k| (t, k)))
        .filter(|(_, k)| k.doc.is_empty())
        .map(|(t, k)| format!("{}.{}", t.path, k.name))
        .collect();
    if !undocumented.is_empty() {
        bail!(
            "config keys without a doc comment (the man page and config.toml need one): {}",
            undocumented.join(", ")
        );
    }
    Ok(tree)
}

struct Reader {
    defs: Map<String, Value>,
}

impl Reader {
    /// A `$ref` followed to its definition; any other schema as it is.
    fn resolve<'a>(&'a self, schema: &'a Value) -> anyhow::Result<&'a Value> {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let name = reference
                    .strip_prefix("#/$defs/")
                    .ok_or_else(|| anyhow!("unexpected schema reference {reference}"))?;
                self.defs
                    .get(name)
                    .ok_or_else(|| anyhow!("schema reference {reference} has no definition"))
            }
            None => Ok(schema),
        }
    }

    /// The struct a property holds, if it is one (directly, optional, or as array items).
    fn object<'a>(&'a self, schema: &'a Value) -> anyhow::Result<Option<&'a Value>> {
        let schema = self.resolve(schema)?;
        if schema.get("properties").is_some() {
            return Ok(Some(schema));
        }
        if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
            for option in any {
                if let Some(object) = self.object(option)? {
                    return Ok(Some(object));
                }
            }
        }
        Ok(None)
    }

    fn table(
        &self,
        schema: &Value,
        path: &str,
        array: bool,
        defaults: Option<&toml::Value>,
    ) -> anyhow::Result<Table> {
        let schema = self.resolve(schema)?;
        let properties = schema
            .get("properties")
            .and_then(Value::as_object)
            .ok_or_else(|| anyhow!("config table [{path}] has no properties in the schema"))?;
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut table = Table {
            path: path.to_owned(),
            array,
            doc: doc(schema),
            keys: Vec::new(),
            tables: Vec::new(),
        };
        for (name, property) in properties {
            let child = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            let default = defaults.and_then(|d| d.get(name));
            let resolved = self.resolve(property)?;
            let items = resolved.get("items");
            let is_array = type_names(resolved).contains(&"array");
            if let Some(object) = self.object(property)? {
                let mut sub = self.table(object, &child, false, default)?;
                if let Some(text) = own_doc(property) {
                    sub.doc = text;
                }
                table.tables.push(sub);
            } else if let (true, Some(items)) = (is_array, items) {
                if let Some(object) = self.object(items)? {
                    let mut sub = self.table(object, &child, true, None)?;
                    if let Some(text) = own_doc(property) {
                        sub.doc = text;
                    }
                    table.tables.push(sub);
                    continue;
                }
                table
                    .keys
                    .push(self.key(name, property, default, &required)?);
            } else {
                table
                    .keys
                    .push(self.key(name, property, default, &required)?);
            }
        }
        Ok(table)
    }

    fn key(
        &self,
        name: &str,
        property: &Value,
        default: Option<&toml::Value>,
        required: &[&str],
    ) -> anyhow::Result<Key> {
        let text = own_doc(property)
            .or_else(|| self.resolve(property).ok().map(doc))
            .unwrap_or_default();
        let kind = self.kind(property)?;
        // The schema's default is the field's own (also inside array tables, which have no
        // default as a whole); the file's default tree covers fields the schema leaves out.
        let default = match property.get("default") {
            Some(Value::Null) => None,
            Some(value) => Some(
                toml::Value::try_from(value)
                    .with_context(|| format!("default of config key `{name}`"))?,
            ),
            None => default.cloned(),
        };
        let default = match (kind.as_str(), default) {
            ("duration", Some(toml::Value::String(text))) => {
                Some(toml::Value::String(readable_duration(&text)?))
            }
            (_, default) => default,
        };
        Ok(Key {
            name: name.to_owned(),
            kind,
            doc: text,
            default,
            required: required.contains(&name),
        })
    }

    /// What a value of this key looks like, in words.
    fn kind(&self, property: &Value) -> anyhow::Result<String> {
        let schema = self.resolve(property)?;
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            let words: Vec<String> = values
                .iter()
                .filter_map(Value::as_str)
                .map(|v| format!("\"{v}\""))
                .collect();
            return Ok(format!("one of {}", words.join(", ")));
        }
        if let Some(any) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array)
        {
            let kinds: Vec<String> = any
                .iter()
                .filter(|s| type_names(s) != ["null"])
                .map(|s| self.kind(s))
                .collect::<anyhow::Result<_>>()?;
            return Ok(kinds.join(" or "));
        }
        let types: Vec<&str> = type_names(schema)
            .into_iter()
            .filter(|t| *t != "null")
            .collect();
        let word = match types.as_slice() {
            ["string"] => match schema.get("format").and_then(Value::as_str) {
                Some("duration") => "duration".to_owned(),
                _ => "string".to_owned(),
            },
            ["integer"] => "integer".to_owned(),
            ["number"] => "number".to_owned(),
            ["boolean"] => "boolean".to_owned(),
            ["array"] => match schema.get("items") {
                Some(items) => format!("list of {}s", self.kind(items)?),
                None => "list".to_owned(),
            },
            ["object"] => "table".to_owned(),
            other => bail!("config schema has a type this generator does not know: {other:?}"),
        };
        Ok(word)
    }
}

fn type_names(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The doc comment on the field itself (schemars puts it beside a `$ref`).
fn own_doc(property: &Value) -> Option<String> {
    let text = doc(property);
    (!text.is_empty()).then_some(text)
}

/// A doc comment as schemars splits it (a one-line first paragraph becomes the title), with
/// the source's line breaks inside a paragraph undone: paragraphs are separated by blank lines.
fn doc(schema: &Value) -> String {
    let part = |key: &str| schema.get(key).and_then(Value::as_str).unwrap_or("");
    let text = match (part("title"), part("description")) {
        ("", d) => d.to_owned(),
        (t, "") => t.to_owned(),
        (t, d) => format!("{t}\n\n{d}"),
    };
    text.split("\n\n")
        .map(|paragraph| paragraph.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|paragraph| !paragraph.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// `"1year 1month 4days 7h 26m 24s"` (humantime's rendering of 400 days) as `"400days"`: the
/// largest unit that divides the duration evenly.
fn readable_duration(text: &str) -> anyhow::Result<String> {
    let duration = humantime::parse_duration(text)
        .with_context(|| format!("default duration {text:?} does not parse"))?;
    if duration.subsec_nanos() != 0 {
        return Ok(text.to_owned());
    }
    let secs = duration.as_secs();
    Ok(match secs {
        0 => "0s".to_owned(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_of_the_file_is_in_the_tree() {
        let tree = config_tree().expect("tree");
        let headers: Vec<String> = tree.walk().iter().map(|t| t.header()).collect();
        for want in [
            "[daemon]",
            "[server]",
            "[queue]",
            "[queue.timeouts]",
            "[[repository]]",
            "[[source]]",
            "[[security.binding]]",
            "[maintenance]",
            "[metrics]",
        ] {
            assert!(
                headers.contains(&want.to_owned()),
                "{want} missing from {headers:?}"
            );
        }
    }

    #[test]
    fn keys_carry_kind_default_and_doc() {
        let tree = config_tree().expect("tree");
        let queue = tree
            .walk()
            .into_iter()
            .find(|t| t.path == "queue")
            .expect("queue");
        let workers = queue
            .keys
            .iter()
            .find(|k| k.name == "workers")
            .expect("workers");
        assert_eq!(workers.kind, "integer");
        assert_eq!(workers.default, Some(toml::Value::Integer(2)));
        assert!(workers.doc.contains("Jobs run at once"), "{}", workers.doc);
        let aging = queue
            .keys
            .iter()
            .find(|k| k.name == "aging")
            .expect("aging");
        assert_eq!(aging.kind, "duration");
        assert_eq!(aging.default, Some(toml::Value::String("10m".into())));
        let history = tree
            .walk()
            .into_iter()
            .find(|t| t.path == "history")
            .expect("history");
        let age = history
            .keys
            .iter()
            .find(|k| k.name == "max_age")
            .expect("max_age");
        assert_eq!(
            age.default,
            Some(toml::Value::String("365d".into())),
            "{age:?}"
        );
        let source = tree
            .walk()
            .into_iter()
            .find(|t| t.path == "source")
            .expect("source");
        assert!(source.array);
        let path = source.keys.iter().find(|k| k.name == "path").expect("path");
        assert!(path.required && path.default.is_none());
    }
}
