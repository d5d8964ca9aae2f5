//! Where a repository is: the registry names repositories by location, and a location opens
//! the backend that stores it. Only local directories exist today; `s3://bucket/prefix` parses
//! into a clear "not supported yet" so that the S3 backend is one more arm here.

use super::backend::daemon_rights::DaemonRights;
use super::backend::{Backend, LocalBackend};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Location {
    /// A directory on a local (or locally mounted) file system; always absolute.
    Local(PathBuf),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LocationError {
    #[error(
        "repository location {text:?}: {scheme}:// repositories are not supported yet; use an \
         absolute directory path"
    )]
    Unsupported { text: String, scheme: String },
    #[error("repository location {0:?} must be an absolute path (or, later, a URL)")]
    Relative(String),
    #[error("repository location is empty")]
    Empty,
    #[error(
        "repository location {0:?} is not valid UTF-8; the registry stores locations as text: \
         choose a directory whose path is UTF-8"
    )]
    NotText(String),
}

impl Location {
    /// A local directory; relative paths are refused by [`Self::validate`].
    pub fn local(path: impl Into<PathBuf>) -> Self {
        Self::Local(path.into())
    }

    /// Parses a location as users and the registry write it: an absolute path, or a URL whose
    /// scheme names a backend.
    pub fn parse(text: &str) -> Result<Self, LocationError> {
        if text.is_empty() {
            return Err(LocationError::Empty);
        }
        if let Some((scheme, _)) = text.split_once("://") {
            let valid_scheme = !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
            if valid_scheme {
                return Err(LocationError::Unsupported {
                    text: text.to_owned(),
                    scheme: scheme.to_ascii_lowercase(),
                });
            }
        }
        let location = Self::Local(PathBuf::from(text));
        location.validate()?;
        Ok(location)
    }

    pub fn validate(&self) -> Result<(), LocationError> {
        match self {
            Self::Local(p) if !p.is_absolute() => {
                Err(LocationError::Relative(p.display().to_string()))
            }
            Self::Local(p) if p.to_str().is_none() => Err(self.not_text()),
            Self::Local(_) => Ok(()),
        }
    }

    /// The location as the registry stores it and [`Self::parse`] reads it back; `None` for a
    /// local path that is not UTF-8.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Self::Local(p) => p.to_str().map(str::to_owned),
        }
    }

    /// The error for a location without a text form.
    pub fn not_text(&self) -> LocationError {
        LocationError::NotText(self.to_string())
    }

    /// The directory, for a local location (e.g. to keep it out of its own backups).
    pub fn local_path(&self) -> Option<&Path> {
        match self {
            Self::Local(p) => Some(p),
        }
    }

    /// The backend that stores a repository here.
    pub fn open_backend(&self) -> Arc<dyn Backend> {
        match self {
            // Jobs acting for a user reach the storage from threads with the user's rights.
            Self::Local(p) => Arc::new(DaemonRights(LocalBackend::new(p))),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(p) => write!(f, "{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_and_urls_say_they_are_not_supported_yet() {
        assert_eq!(
            Location::parse("/srv/backup"),
            Ok(Location::local("/srv/backup"))
        );
        let e = Location::parse("s3://bucket/prefix").expect_err("s3 is not there yet");
        assert!(
            matches!(&e, LocationError::Unsupported { scheme, .. } if scheme == "s3"),
            "{e:?}"
        );
        assert!(e.to_string().contains("not supported yet"), "{e}");
        assert_eq!(
            Location::parse("relative/dir"),
            Err(LocationError::Relative("relative/dir".into()))
        );
        assert_eq!(Location::parse(""), Err(LocationError::Empty));
        // A directory whose name merely contains "://" after a slash is still a path.
        assert!(matches!(
            Location::parse("/odd/a://b"),
            Ok(Location::Local(_))
        ));
    }
}
