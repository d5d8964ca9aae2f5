//! Which repositories and sources came from the config file (tree `declared`, one key
//! `<kind>/<name>` each). Only used to notice that an entry was declared before and is no longer,
//! so that this is said in the log instead of the entry silently changing or vanishing.

use super::{State, StateError};

const TREE: &str = "declared";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Repository,
    Source,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Self::Repository => "repository/",
            Self::Source => "source/",
        }
    }
}

pub struct Declared {
    tree: sled::Tree,
    state: State,
}

impl Declared {
    pub fn open(state: &State) -> Result<Self, StateError> {
        Ok(Self {
            tree: state.tree(TREE)?,
            state: state.clone(),
        })
    }

    fn write_err(&self, source: sled::Error) -> StateError {
        StateError::Write {
            path: self.state.path().to_owned(),
            source,
        }
    }

    pub fn mark(&self, kind: Kind, name: &str) -> Result<(), StateError> {
        let key = format!("{}{name}", kind.prefix());
        self.tree
            .insert(key.as_bytes(), &[])
            .map_err(|e| self.write_err(e))?;
        Ok(())
    }

    pub fn unmark(&self, kind: Kind, name: &str) -> Result<(), StateError> {
        let key = format!("{}{name}", kind.prefix());
        self.tree
            .remove(key.as_bytes())
            .map_err(|e| self.write_err(e))?;
        Ok(())
    }

    /// Names marked as declared, of one kind.
    pub fn names(&self, kind: Kind) -> Vec<String> {
        self.tree
            .scan_prefix(kind.prefix().as_bytes())
            .filter_map(|item| item.ok())
            .filter_map(|(key, _)| {
                let key = String::from_utf8(key.to_vec()).ok()?;
                key.strip_prefix(kind.prefix()).map(str::to_owned)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_kept_per_kind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = State::open(dir.path()).expect("open");
        let d = Declared::open(&state).expect("tree");
        d.mark(Kind::Repository, "a").expect("mark");
        d.mark(Kind::Source, "a").expect("mark");
        d.mark(Kind::Source, "b").expect("mark");
        assert_eq!(d.names(Kind::Repository), vec!["a"]);
        d.unmark(Kind::Source, "a").expect("unmark");
        assert_eq!(d.names(Kind::Source), vec!["b"]);
    }
}
