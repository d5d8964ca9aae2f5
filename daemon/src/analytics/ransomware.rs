//! The mass-encryption signal. Ransomware rewrites many files as incompressible data, so one
//! backup shows two things at once: the compression ratio of the data it added falls far below
//! the source's usual ratio, and the number of changed files jumps. Either alone is ordinary (a
//! batch of photos, a large checkout); together they are the signal.
//!
//! A source whose data never compressed (media, archives) has no ratio to fall from: there the
//! signal cannot fire, which is a limit of the method, not an absence of risk.

use super::baseline::{Baseline, Judgement};

/// Fewer changed files than this are never mass encryption, whatever the baseline says.
pub const MIN_FILES: f64 = 50.0;
/// Added data compressing better than this is not the output of encryption.
pub const MAX_RATIO: f64 = 1.10;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Signal {
    pub compression: Judgement,
    pub files: Judgement,
}

/// The signal for one backup: `ratio` is the compression ratio of the data it added,
/// `files_changed` the files it read; each judged against the source's baseline of the same.
pub fn judge(
    ratios: &Baseline,
    files: &Baseline,
    ratio: f64,
    files_changed: f64,
) -> Option<Signal> {
    let compression = ratios.judge(ratio)?;
    let changed = files.judge(files_changed)?;
    let fell = compression.sigmas < -super::baseline::SIGMAS && ratio <= MAX_RATIO;
    let jumped = changed.sigmas > super::baseline::SIGMAS && files_changed >= MIN_FILES;
    (fell && jumped).then_some(Signal {
        compression,
        files: changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_source() -> (Baseline, Baseline) {
        let ratios = Baseline::from_values([2.8, 3.1, 2.9, 3.0, 2.7, 3.2, 2.9, 3.0, 3.1, 2.8, 2.9]);
        let files =
            Baseline::from_values([5.0, 12.0, 8.0, 3.0, 20.0, 7.0, 9.0, 4.0, 15.0, 6.0, 10.0]);
        (ratios, files)
    }

    #[test]
    fn many_files_rewritten_incompressible_is_the_signal() {
        let (ratios, files) = text_source();
        let signal = judge(&ratios, &files, 1.0, 500.0).expect("signal");
        assert!(
            signal.compression.sigmas < -3.0 && signal.files.sigmas > 3.0,
            "{signal:?}"
        );
    }

    #[test]
    fn either_alone_is_not() {
        let (ratios, files) = text_source();
        // A few incompressible files (photos added).
        assert_eq!(judge(&ratios, &files, 1.0, 10.0), None);
        // Many ordinary files (a checkout).
        assert_eq!(judge(&ratios, &files, 2.9, 500.0), None);
    }

    #[test]
    fn a_source_that_never_compressed_cannot_fire() {
        let ratios = Baseline::from_values(std::iter::repeat_n(1.0, 12));
        let (_, files) = text_source();
        assert_eq!(judge(&ratios, &files, 1.0, 500.0), None);
    }

    #[test]
    fn no_signal_before_the_baselines_have_ten_values() {
        let ratios = Baseline::from_values([3.0; 5]);
        let (_, files) = text_source();
        assert_eq!(judge(&ratios, &files, 1.0, 500.0), None);
    }
}
