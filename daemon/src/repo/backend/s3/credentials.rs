//! S3 credentials: where the daemon finds them, and the AWS credentials-file format it reads.
//!
//! In order: the file stored for the repository (`backupctl repo init --credentials-file`,
//! kept 0600 under the state directory's `keys/`), the daemon's `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, then its shared credentials file
//! (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`, profile `AWS_PROFILE` or
//! `default`). With none of them the client falls back to the instance metadata and web
//! identity providers. Secrets are never logged: [`Credentials`] prints as `..`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One access key.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialsError {
    #[error(
        "S3 credentials {origin}: {reason}. Write it in the AWS credentials format: a \
         [default] section with aws_access_key_id and aws_secret_access_key (and \
         aws_session_token for temporary keys)"
    )]
    Invalid { origin: String, reason: String },
    #[error("cannot read the S3 credentials file {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error(
        "the repository's S3 credentials file {name} is stored by the daemon, but the daemon \
         has no state directory set up to read it from (a tool run outside the daemon?)"
    )]
    NoStore { name: String },
}

/// The largest credentials file read: a handful of keys, never megabytes.
const MAX_FILE: u64 = 64 * 1024;

/// Reads `profile` (or, when the file has one section only, that one) from the AWS
/// credentials-file format.
pub fn parse(text: &str, profile: &str, origin: &str) -> Result<Credentials, CredentialsError> {
    let invalid = |reason: String| CredentialsError::Invalid {
        origin: origin.to_owned(),
        reason,
    };
    let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            let name = name.strip_prefix("profile ").unwrap_or(name).trim();
            sections.push((name.to_owned(), Vec::new()));
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            // The line may hold a secret: never quote it.
            return Err(invalid(
                "a line is neither a [section] nor key = value".into(),
            ));
        };
        match sections.last_mut() {
            Some((_, entries)) => entries.push((k.trim().to_ascii_lowercase(), v.trim().into())),
            None => {
                return Err(invalid(
                    "a key = value line comes before any [section]".into(),
                ))
            }
        }
    }
    let section = match sections.iter().find(|(n, _)| n == profile) {
        Some(s) => s,
        None if sections.len() == 1 => &sections[0],
        None => {
            return Err(invalid(format!(
                "it has no [{profile}] section (sections: {})",
                sections
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    };
    let get = |key: &str| {
        section
            .1
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let access_key_id = get("aws_access_key_id")
        .ok_or_else(|| invalid(format!("section [{}] has no aws_access_key_id", section.0)))?;
    let secret_access_key = get("aws_secret_access_key").ok_or_else(|| {
        invalid(format!(
            "section [{}] has no aws_secret_access_key",
            section.0
        ))
    })?;
    Ok(Credentials {
        access_key_id,
        secret_access_key,
        session_token: get("aws_session_token"),
    })
}

/// Reads a credentials file, bounded in size.
pub fn read_file(path: &Path, profile: &str) -> Result<Credentials, CredentialsError> {
    use std::io::Read;
    let unreadable = |reason: String| CredentialsError::Unreadable {
        path: path.to_owned(),
        reason,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(|e| unreadable(e.to_string()))?
        .take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| unreadable(e.to_string()))?;
    if text.len() as u64 > MAX_FILE {
        return Err(unreadable(format!("larger than {MAX_FILE} bytes")));
    }
    parse(&text, profile, &path.display().to_string())
}

/// Where the daemon keeps stored credentials files (`STATE_DIR/keys`), set once at start.
static STORE: OnceLock<PathBuf> = OnceLock::new();

/// Tells the S3 backend where stored credentials files are (the daemon's key directory).
pub fn set_store(dir: &Path) {
    let _ = STORE.set(dir.to_owned());
}

/// The path of a stored credentials file.
pub fn stored_path(name: &str) -> Option<PathBuf> {
    STORE.get().map(|d| d.join(name))
}

/// The credentials for a repository, in the order of the module doc; `Ok(None)` leaves it to
/// the client's own providers (instance metadata, web identity).
pub fn resolve(stored: Option<&str>) -> Result<Option<Credentials>, CredentialsError> {
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    if let Some(name) = stored {
        let path = stored_path(name).ok_or_else(|| CredentialsError::NoStore {
            name: name.to_owned(),
        })?;
        return read_file(&path, "default").map(Some);
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Some(Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: env("AWS_SESSION_TOKEN"),
        }));
    }
    let shared = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".aws/credentials")));
    match shared {
        Some(path) if path.exists() => read_file(&path, &profile).map(Some),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aws_format_is_read_by_profile() {
        let text = "# keys\n[default]\naws_access_key_id = AKIA1\naws_secret_access_key=s1\n\n\
                    [profile backup]\naws_access_key_id=AKIA2\naws_secret_access_key = s2\n\
                    aws_session_token = t2\n";
        let d = parse(text, "default", "f").expect("default");
        assert_eq!((d.access_key_id.as_str(), d.session_token), ("AKIA1", None));
        let b = parse(text, "backup", "f").expect("profile");
        assert_eq!(b.secret_access_key, "s2");
        assert_eq!(b.session_token.as_deref(), Some("t2"));
        assert_eq!(format!("{b:?}"), "Credentials(..)", "never printed");
        let only = parse(
            "[x]\naws_access_key_id=a\naws_secret_access_key=b\n",
            "default",
            "f",
        );
        assert!(only.is_ok(), "a file with one section is that section");
    }

    #[test]
    fn broken_files_say_why_without_quoting_secrets() {
        let e = parse("[default]\naws_access_key_id=a\n", "default", "f").expect_err("no secret");
        assert!(e.to_string().contains("aws_secret_access_key"), "{e}");
        let e = parse("SECRETVALUE\n", "default", "f").expect_err("garbage");
        assert!(!e.to_string().contains("SECRETVALUE"), "{e}");
        let e = parse("[a]\n[b]\n", "c", "f").expect_err("no such profile");
        assert!(e.to_string().contains("no [c] section"), "{e}");
    }
}
