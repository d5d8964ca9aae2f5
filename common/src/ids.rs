//! Newtype identifiers. Raw integers or strings never cross module boundaries as ids.

/// Declares a newtype id over an integer with `Display`, serde and conversions.
#[macro_export]
macro_rules! id_newtype {
    ($(#[$meta:meta])* $name:ident($inner:ty)) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
            serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0, f)
            }
        }

        impl From<$inner> for $name {
            fn from(value: $inner) -> Self {
                Self(value)
            }
        }
    };
}

id_newtype!(
    /// Chosen by the client per connection; every response frame echoes it.
    RequestId(u64)
);

/// Declares a newtype id over 32 bytes, shown and parsed as lowercase hex.
#[macro_export]
macro_rules! hash_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
            serde::Serialize, serde::Deserialize,
        )]
        pub struct $name(pub [u8; 32]);

        impl $name {
            pub fn to_hex(&self) -> String {
                // Listings print thousands of ids: no allocation per byte.
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                let mut s = String::with_capacity(64);
                for b in self.0 {
                    s.push(DIGITS[usize::from(b >> 4)] as char);
                    s.push(DIGITS[usize::from(b & 0xf)] as char);
                }
                s
            }

            /// Parses 64 hex digits.
            pub fn from_hex(text: &str) -> Option<Self> {
                if text.len() != 64 || !text.is_ascii() {
                    return None;
                }
                let mut out = [0u8; 32];
                for (i, byte) in out.iter_mut().enumerate() {
                    *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
                }
                Some(Self(out))
            }

            /// The first 8 hex digits, as users see ids in tables.
            pub fn short(&self) -> String {
                self.to_hex()[..8].to_owned()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }
    };
}

hash_id!(
    /// Keyed hash (HMAC-SHA256 under the repository's id key) of a blob's plaintext.
    BlobId
);
hash_id!(
    /// SHA-256 of a pack file's bytes; also its file name.
    PackId
);
hash_id!(
    /// SHA-256 of a snapshot file's bytes; also its file name.
    SnapshotId
);
hash_id!(
    /// SHA-256 of an index file's bytes; also its file name.
    IndexId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ids_round_trip_through_hex() {
        let id = BlobId([0xAB; 32]);
        assert_eq!(BlobId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(id.short(), "abababab");
        assert_eq!(BlobId::from_hex("zz"), None);
        assert_eq!(BlobId::from_hex(&"g".repeat(64)), None);
    }
}
