//! Object-store credentials given with `repo init` / `repo add --credentials-file`: stored like
//! passphrases (`STATE_DIR/keys/NAME.s3-credentials`, 0600, written whole and fsynced) and
//! named in the registered location, never copied into it. They can be replaced by
//! registering again: unlike a passphrase they are not the only way into the data.

use super::RegistryError;
use crate::repo::backend::s3::credentials::{self as s3creds, CredentialsError};
use crate::repo::Location;
use std::path::{Path, PathBuf};

/// `location` as it is registered: an S3 location given credentials names their stored file.
/// Also returns the file when this call created it, for the caller to remove if registering
/// fails.
pub fn attach(
    keys_dir: &Path,
    repo: &str,
    location: &Location,
    credentials: Option<&[u8]>,
) -> Result<(Location, Option<PathBuf>), RegistryError> {
    let Location::S3(spec) = location else {
        return match credentials {
            Some(_) => Err(CredentialsError::Invalid {
                origin: "given".into(),
                reason: format!("the repository at {location} is not an object store"),
            }
            .into()),
            None => Ok((location.clone(), None)),
        };
    };
    let Some(text) = credentials else {
        // A name given in the location must be one the daemon has stored.
        if let Some(name) = &spec.credentials {
            let path = keys_dir.join(name);
            if !path.is_file() {
                return Err(CredentialsError::Unreadable {
                    path,
                    reason: "the location names stored credentials that do not exist; pass \
                             --credentials-file"
                        .into(),
                }
                .into());
            }
        }
        return Ok((location.clone(), None));
    };
    let text = std::str::from_utf8(text).map_err(|_| CredentialsError::Invalid {
        origin: "given".into(),
        reason: "it is not text".into(),
    })?;
    s3creds::parse(text, "default", "given")?;
    let file = format!("{repo}.s3-credentials");
    let path = keys_dir.join(&file);
    let key_file = |action, source| RegistryError::KeyFile {
        action,
        path: path.clone(),
        source,
    };
    match std::fs::read(&path) {
        Ok(old) if old == text.as_bytes() => {}
        Ok(_) => std::fs::remove_file(&path).map_err(|e| key_file("replace", e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(key_file("read", e)),
    }
    let created = if path.exists() {
        None
    } else {
        super::write_new_durably(&path, text.as_bytes())
            .map_err(|(action, source)| key_file(action, source))?;
        Some(path)
    };
    let mut spec = spec.clone();
    spec.credentials = Some(file);
    Ok((Location::S3(spec), created))
}
