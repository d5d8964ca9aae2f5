//! Where a repository is: the registry names repositories by location, and a location opens
//! the backend that stores it: a local directory, or an S3 bucket and prefix
//! (`s3://bucket/prefix?endpoint=...`, see [`S3Spec`]). Other URL schemes are refused with a
//! clear "not supported".

use super::backend::daemon_rights::DaemonRights;
pub use super::backend::s3::spec::S3Spec;
use super::backend::s3::spec::SpecError;
use super::backend::s3::S3Backend;
use super::backend::{cache, Backend, LocalBackend};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Location {
    /// A directory on a local (or locally mounted) file system; always absolute.
    Local(PathBuf),
    /// A bucket (and prefix) of an S3-compatible object store (boxed: a location travels in
    /// errors, which stay small).
    S3(Box<S3Spec>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LocationError {
    #[error(
        "repository location {text:?}: {scheme}:// repositories are not supported; use an \
         absolute directory path or s3://BUCKET/PREFIX"
    )]
    Unsupported { text: String, scheme: String },
    #[error(transparent)]
    S3(#[from] SpecError),
    #[error("repository location {0:?} must be an absolute path or an s3:// URL")]
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
            if valid_scheme && scheme.eq_ignore_ascii_case("s3") {
                return Ok(Self::S3(Box::new(S3Spec::parse(text)?)));
            }
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
            Self::S3(_) => Ok(()),
        }
    }

    /// The location as the registry stores it and [`Self::parse`] reads it back; `None` for a
    /// local path that is not UTF-8.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Self::Local(p) => p.to_str().map(str::to_owned),
            Self::S3(s) => Some(s.to_text()),
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
            Self::S3(_) => None,
        }
    }

    /// The backend that stores a repository here.
    pub fn open_backend(&self) -> Arc<dyn Backend> {
        match self {
            // Jobs acting for a user reach the storage from threads with the user's rights.
            Self::Local(p) => Arc::new(DaemonRights(LocalBackend::new(p))),
            // The cache lives in the daemon's state directory: its files are the daemon's too.
            Self::S3(s) => cache::wrap(
                Arc::new(DaemonRights(S3Backend::new((**s).clone()))),
                &s.without_credentials().to_text(),
            ),
        }
    }

    /// Whether the repository is reached over a network (an object store).
    pub fn is_remote(&self) -> bool {
        matches!(self, Self::S3(_))
    }

    /// The same place, compared without how it is reached (the stored credentials' name): two
    /// registrations of one bucket and prefix are one repository.
    pub fn same_place(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::S3(a), Self::S3(b)) => a.without_credentials() == b.without_credentials(),
            (a, b) => a == b,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(p) => write!(f, "{}", p.display()),
            Self::S3(s) => write!(f, "{s}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_s3_urls_parse_and_other_urls_say_they_are_not_supported() {
        assert_eq!(
            Location::parse("/srv/backup"),
            Ok(Location::local("/srv/backup"))
        );
        let s3 = Location::parse("s3://bucket/prefix").expect("s3");
        assert!(matches!(&s3, Location::S3(s) if s.bucket == "bucket" && s.prefix == "prefix"));
        assert_eq!(Location::parse(&s3.as_text().expect("text")), Ok(s3));
        let e = Location::parse("sftp://host/dir").expect_err("sftp is not there");
        assert!(
            matches!(&e, LocationError::Unsupported { scheme, .. } if scheme == "sftp"),
            "{e:?}"
        );
        assert!(e.to_string().contains("not supported"), "{e}");
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
