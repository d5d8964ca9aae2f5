//! Decoding bincode from the repository with allocation bounded by the input's size.
//!
//! bincode's `with_limit` counts claimed bytes, and a string or byte buffer of claimed length n
//! is allocated (n bytes) before its bytes are read. With one fixed limit, a few hostile bytes
//! claiming a 500 MiB string would allocate 500 MiB before failing. A valid encoding claims at
//! most 8 bytes per input byte (a varint integer claims its full width; strings claim their
//! length, which they occupy), so the limit here is the smallest of a ladder of limits that is
//! at least 8 × the input: nothing larger than a small multiple of the input is ever allocated,
//! and `cap` still bounds the whole.

use serde::de::DeserializeOwned;

/// Smallest limit used: small objects decode under it whatever their shape.
const FLOOR: usize = 64 * 1024;

fn decode_with<T: DeserializeOwned, const LIMIT: usize>(bytes: &[u8]) -> Result<T, String> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard().with_limit::<LIMIT>())
        .map(|(value, _)| value)
        .map_err(|e| e.to_string())
}

/// Decodes `bytes`, allocating at most about 32 × their length (and never past `cap`).
pub fn bounded<T: DeserializeOwned>(bytes: &[u8], cap: usize) -> Result<T, String> {
    let need = bytes.len().saturating_mul(8).max(FLOOR).min(cap);
    macro_rules! ladder {
        ($($limit:expr),*) => {
            $(if need <= $limit {
                return decode_with::<T, { $limit }>(bytes);
            })*
        };
    }
    ladder!(
        FLOOR,
        1 << 18,
        1 << 20,
        1 << 22,
        1 << 24,
        1 << 26,
        1 << 28,
        1 << 29
    );
    Err(format!(
        "{} bytes claim more than the {} bytes any object may",
        bytes.len(),
        cap
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_encodings_decode_and_a_claimed_huge_string_does_not_allocate_it() {
        let value = (u64::MAX, vec![String::from("x"); 1000], i64::MIN);
        let bytes =
            bincode::serde::encode_to_vec(&value, bincode::config::standard()).expect("encode");
        let back: (u64, Vec<String>, i64) = bounded(&bytes, 1 << 29).expect("decode");
        assert_eq!(back, value);
        // A string claiming 400 MiB in 6 bytes: refused as over the limit, not allocated.
        let hostile = [253, 0, 0, 0, 25, 0, 0, 0, 0];
        assert!(bounded::<String>(&hostile, 1 << 29).is_err());
    }
}
