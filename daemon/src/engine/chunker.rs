//! Content-defined chunking of a stream with FastCDC (2020), seeded per repository so chunk
//! boundaries reveal nothing about the content to someone without the key.

use fastcdc::v2020::{FastCDC, Normalization};
use std::io::{self, Read};

#[derive(Clone, Copy, Debug)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
    pub seed: u64,
}

/// Reads `reader` to the end and calls `emit` with each chunk in order. Inputs no larger than
/// `min` are one chunk. `buf` is scratch space reused across calls (it grows to `max + min`
/// bytes once and is never cleared, so no call pays for zeroing it). Returns the bytes read.
pub fn chunk_stream<R: Read, E>(
    mut reader: R,
    params: ChunkerParams,
    buf: &mut Vec<u8>,
    mut emit: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<u64, ChunkError<E>> {
    // More than `max`, so the first chunk of a full window always ends before its edge.
    let window = (params.max + params.min.max(1)) as usize;
    if buf.len() < window {
        buf.resize(window, 0);
    }
    let (mut start, mut end) = (0usize, 0usize);
    let mut total = 0u64;
    let mut eof = false;
    loop {
        // Move the unconsumed tail to the front, then fill the window (or to EOF).
        if start > 0 {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        while !eof && end < window {
            match reader.read(&mut buf[end..window]) {
                Ok(0) => eof = true,
                Ok(n) => {
                    end += n;
                    total += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ChunkError::Read(e)),
            }
        }
        let data = &buf[..end];
        if data.is_empty() {
            return Ok(total);
        }
        if eof && data.len() <= params.min as usize {
            emit(data).map_err(ChunkError::Emit)?;
            return Ok(total);
        }
        let cdc = FastCDC::with_level_and_seed(
            data,
            params.min,
            params.avg,
            params.max,
            Normalization::Level1,
            params.seed,
        );
        for chunk in cdc {
            let chunk_end = chunk.offset + chunk.length;
            // A chunk that ends at the window's edge may be cut short: read more first.
            if !eof && chunk_end == data.len() {
                break;
            }
            emit(&data[chunk.offset..chunk_end]).map_err(ChunkError::Emit)?;
            start = chunk_end;
        }
        if eof && start == end {
            return Ok(total);
        }
    }
}

#[derive(Debug)]
pub enum ChunkError<E> {
    Read(io::Error),
    Emit(E),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ChunkerParams {
        ChunkerParams {
            min: 64 * 1024,
            avg: 128 * 1024,
            max: 512 * 1024,
            seed: 42,
        }
    }

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        backupd_tests::pseudo_random_bytes(len, seed)
    }

    fn chunks(data: &[u8], read_size: usize) -> Vec<Vec<u8>> {
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(out.len()).min(self.1);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut out = Vec::new();
        let mut buf = Vec::new();
        chunk_stream::<_, ()>(Trickle(data, read_size), params(), &mut buf, |c| {
            out.push(c.to_vec());
            Ok(())
        })
        .map_err(|_| ())
        .expect("chunking");
        out
    }

    #[test]
    fn chunks_reassemble_and_do_not_depend_on_read_sizes() {
        let data = pseudo_random(5 * 1024 * 1024 + 123, 7);
        let a = chunks(&data, 1 << 20);
        let b = chunks(&data, 4097);
        assert_eq!(a, b);
        assert_eq!(a.concat(), data);
        assert!(a.iter().all(|c| c.len() <= 512 * 1024));
        assert!(a.len() > 10);
    }

    #[test]
    fn an_insertion_only_changes_nearby_chunks() {
        let data = pseudo_random(8 * 1024 * 1024, 9);
        let mut shifted = vec![0xAB];
        shifted.extend_from_slice(&data);
        let a = chunks(&data, 1 << 20);
        let b = chunks(&shifted, 1 << 20);
        let common = a.iter().filter(|c| b.contains(c)).count();
        assert!(
            common + 2 >= a.len(),
            "{common} of {} chunks shared",
            a.len()
        );
    }

    #[test]
    fn small_and_empty_inputs() {
        assert!(chunks(b"", 10).is_empty());
        assert_eq!(chunks(b"tiny", 10), vec![b"tiny".to_vec()]);
    }
}
