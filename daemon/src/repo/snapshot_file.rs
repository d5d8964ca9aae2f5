//! Snapshot files: how they are named and how a read checks the name. Format 1 names a file by
//! the SHA-256 of its sealed bytes; format 2 by the SHA-256 of its plaintext, so that re-sealing
//! a snapshot under a new data key keeps its id (docs/FORMAT.md, "Snapshots").

use super::crypto::SealFormat;
use super::snapshot::{self, Snapshot};
use super::{
    decode, encode, open_sealed, read_named, sha256, sha256_hex, Key, RepoError, Repository,
    Result, METADATA_LIMIT, SNAPSHOT_HINT,
};
use backupd_common::ids::SnapshotId;

impl Repository {
    /// Writes a snapshot file, named by [`Repository::snapshot_digest`].
    pub fn write_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotId> {
        let plain = encode(snapshot);
        let sealed = self.keys.seal(&plain);
        let id = SnapshotId(self.snapshot_digest(&plain, &sealed));
        self.backend.put(Key::snapshot(&id.to_hex()), &sealed)?;
        if let Some(catalog) = self.catalog.get() {
            catalog.written(&id, snapshot);
        }
        Ok(id)
    }

    /// The hash that names a snapshot file. Format 1: its sealed bytes. Format 2: its plaintext,
    /// so re-sealing it under a new data key keeps its id (and every reference to it); the id
    /// reveals nothing, since the plaintext holds a keyed tree id and a nanosecond time.
    fn snapshot_digest(&self, plain: &[u8], sealed: &[u8]) -> [u8; 32] {
        match self.keys.seal_format {
            SealFormat::V1 => sha256(sealed),
            SealFormat::V2 | SealFormat::Migrating => sha256(plain),
        }
    }

    /// Seals snapshot `id` again under the current data-key version and returns its id: the
    /// same in format 2 (the file is replaced in one rename), a new one in format 1 (named by
    /// its sealed bytes: the new file is written before the old one is deleted).
    pub fn reseal_snapshot(&self, id: &SnapshotId) -> Result<SnapshotId> {
        let name = id.to_hex();
        let bytes = self.backend.get(Key::snapshot(&name))?;
        let plain = open_sealed(&self.keys, &bytes, "snapshot", &name, SNAPSHOT_HINT)?;
        let snapshot = self.read_snapshot(id)?;
        let sealed = self.keys.seal(&plain);
        let new = SnapshotId(self.snapshot_digest(&plain, &sealed));
        self.backend.put(Key::snapshot(&new.to_hex()), &sealed)?;
        if new != *id {
            if let Some(catalog) = self.catalog.get() {
                catalog.written(&new, &snapshot);
            }
            self.remove_snapshot(id)?;
        }
        Ok(new)
    }

    /// Copies snapshot `id` from `source` (a repository of the same format whose blobs this one
    /// holds): its plaintext, checked against its name, sealed with this repository's current
    /// data key under the same name. The id stays the source's (format 2 names a snapshot by its
    /// plaintext), which is how replication tells which snapshots a replica holds.
    pub fn copy_snapshot_from(&self, source: &Repository, id: &SnapshotId) -> Result<Snapshot> {
        let name = id.to_hex();
        let key = Key::snapshot(&name);
        let snapshot = source.read_snapshot(id)?;
        let bytes = source.backend.get(key)?;
        let plain = open_sealed(&source.keys, &bytes, "snapshot", &name, SNAPSHOT_HINT)?;
        if sha256_hex(&plain) != name || self.keys.seal_format == SealFormat::V1 {
            return Err(RepoError::NameMismatch {
                what: "snapshot file",
                object: source.backend.describe(key),
                actual: sha256_hex(&plain),
                hint: "a replica copies snapshots of a format 2 repository only; run `backupctl repo migrate --to 2` on the source",
            });
        }
        self.backend.put(key, &self.keys.seal(&plain))?;
        if let Some(catalog) = self.catalog.get() {
            catalog.written(id, &snapshot);
        }
        Ok(snapshot)
    }

    /// Reads one snapshot, checking that it hashes to its name (an older snapshot copied over a
    /// newer one is refused, not read as the newer one): the file's bytes in format 1, the
    /// opened plaintext in format 2.
    pub fn read_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let name = id.to_hex();
        let key = Key::snapshot(&name);
        let plain = match self.keys.seal_format {
            SealFormat::V1 => {
                let bytes = read_named(self.backend(), key, "snapshot file", SNAPSHOT_HINT)?;
                open_sealed(&self.keys, &bytes, "snapshot", &name, SNAPSHOT_HINT)?
            }
            format @ (SealFormat::V2 | SealFormat::Migrating) => {
                let bytes = self.backend.get(key)?;
                let plain = open_sealed(&self.keys, &bytes, "snapshot", &name, SNAPSHOT_HINT)?;
                let actual = sha256_hex(&plain);
                // During a migration a format 1 snapshot keeps its name until it is sealed again.
                let v1_named = format == SealFormat::Migrating
                    && self.keys.layout_of(&bytes) == SealFormat::V1
                    && sha256_hex(&bytes) == name;
                if actual != name && !v1_named {
                    return Err(RepoError::NameMismatch {
                        what: "snapshot file",
                        object: self.backend.describe(key),
                        actual,
                        hint: SNAPSHOT_HINT,
                    });
                }
                plain
            }
        };
        let corrupt = |reason: String| RepoError::Corrupt {
            what: "snapshot",
            name: name.clone(),
            reason,
            hint: SNAPSHOT_HINT,
        };
        // A snapshot written before `owner_uid` ends where the field would start.
        decode::bounded::<Snapshot>(&plain, METADATA_LIMIT).or_else(|_| {
            decode::bounded::<snapshot::SnapshotV1>(&plain, METADATA_LIMIT)
                .map(Snapshot::from)
                .map_err(corrupt)
        })
    }
}
