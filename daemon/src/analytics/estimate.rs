//! The expected duration of a backup from what it reads: a least-squares fit of
//! duration = a + b·bytes + c·files over the source's recent successful runs, with a 90 %
//! prediction interval from the residuals. Where files and bytes do not vary independently the
//! fit drops to bytes alone, and below that to the mean.

use crate::state::records::analytics::RunSample;

/// Runs needed before a fit is made at all.
pub const MIN_RUNS: usize = 3;
/// z of the two-sided 90 % interval.
const Z90: f64 = 1.645;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fit {
    intercept: f64,
    per_byte: f64,
    per_file: f64,
    /// Standard deviation of the residuals (ms).
    spread: f64,
    pub runs: usize,
    /// Bytes read per second over the runs.
    pub throughput_bps: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Expected {
    pub ms: f64,
    pub low_ms: f64,
    pub high_ms: f64,
}

/// Solves the 3×3 system `m · x = v` by Gaussian elimination; `None` when it is singular.
fn solve3(mut m: [[f64; 3]; 3], mut v: [f64; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let pivot = (col..3).max_by(|a, b| m[*a][col].abs().total_cmp(&m[*b][col].abs()))?;
        if m[pivot][col].abs() < 1e-9 {
            return None;
        }
        m.swap(col, pivot);
        v.swap(col, pivot);
        let (pivot_row, pivot_v) = (m[col], v[col]);
        for (row, (m_row, v_row)) in m.iter_mut().zip(v.iter_mut()).enumerate() {
            if row != col {
                let f = m_row[col] / pivot_row[col];
                for (x, p) in m_row.iter_mut().zip(pivot_row).skip(col) {
                    *x -= f * p;
                }
                *v_row -= f * pivot_v;
            }
        }
    }
    Some([v[0] / m[0][0], v[1] / m[1][1], v[2] / m[2][2]])
}

impl Fit {
    pub fn new(runs: &[RunSample]) -> Option<Self> {
        if runs.len() < MIN_RUNS {
            return None;
        }
        // Scaled to MB and thousands of files so the normal equations stay well conditioned.
        let rows: Vec<[f64; 3]> = runs
            .iter()
            .map(|r| [1.0, r.bytes_read as f64 / 1e6, r.files_read as f64 / 1e3])
            .collect();
        let ys: Vec<f64> = runs.iter().map(|r| r.duration_ms as f64).collect();
        let fit_with = |used: &[usize]| -> Option<[f64; 3]> {
            let mut m = [[0.0; 3]; 3];
            let mut v = [0.0; 3];
            for (x, y) in rows.iter().zip(&ys) {
                for i in 0..3 {
                    for j in 0..3 {
                        m[i][j] += x[i] * x[j];
                    }
                    v[i] += x[i] * y;
                }
            }
            // A term left out is pinned to 0 by an identity row.
            for i in 0..3 {
                if !used.contains(&i) {
                    m[i] = [0.0; 3];
                    m[0][i] = 0.0;
                    m[1][i] = 0.0;
                    m[2][i] = 0.0;
                    m[i][i] = 1.0;
                    v[i] = 0.0;
                }
            }
            solve3(m, v).filter(|c| c.iter().all(|x| x.is_finite()))
        };
        let mean = ys.iter().sum::<f64>() / ys.len() as f64;
        let coefficients = fit_with(&[0, 1, 2])
            .or_else(|| fit_with(&[0, 1]))
            .unwrap_or([mean, 0.0, 0.0]);
        let predict = |x: &[f64; 3]| -> f64 { (0..3).map(|i| coefficients[i] * x[i]).sum() };
        let dof = (ys.len() as f64 - 3.0).max(1.0);
        let spread = (rows
            .iter()
            .zip(&ys)
            .map(|(x, y)| (y - predict(x)).powi(2))
            .sum::<f64>()
            / dof)
            .sqrt();
        let (bytes, ms) = runs.iter().fold((0u64, 0u64), |(b, t), r| {
            (b + r.bytes_read, t + r.duration_ms)
        });
        Some(Self {
            intercept: coefficients[0],
            per_byte: coefficients[1] / 1e6,
            per_file: coefficients[2] / 1e3,
            spread,
            runs: runs.len(),
            throughput_bps: bytes as f64 / (ms.max(1) as f64 / 1000.0),
        })
    }

    pub fn expect(&self, bytes: u64, files: u64) -> Expected {
        let ms =
            (self.intercept + self.per_byte * bytes as f64 + self.per_file * files as f64).max(0.0);
        Expected {
            ms,
            low_ms: (ms - Z90 * self.spread).max(0.0),
            high_ms: ms + Z90 * self.spread,
        }
    }
}

/// The estimate's error on held-out runs: each run from the `MIN_RUNS`+1-th on is estimated
/// from the ones before it. Returns (runs scored, median relative error, share inside the
/// interval).
pub fn backtest(runs: &[RunSample]) -> (usize, f64, f64) {
    let mut errors = Vec::new();
    let mut inside = 0usize;
    for i in MIN_RUNS..runs.len() {
        let Some(fit) = Fit::new(&runs[..i]) else {
            continue;
        };
        let run = runs[i];
        let expected = fit.expect(run.bytes_read, run.files_read);
        let actual = run.duration_ms as f64;
        errors.push((expected.ms - actual).abs() / actual.max(1.0));
        if (expected.low_ms..=expected.high_ms).contains(&actual) {
            inside += 1;
        }
    }
    if errors.is_empty() {
        return (0, 0.0, 0.0);
    }
    errors.sort_by(f64::total_cmp);
    let n = errors.len();
    (n, errors[n / 2], inside as f64 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: u64, files: u64, ms: u64) -> RunSample {
        RunSample {
            v: 1,
            finished_ns: 0,
            duration_ms: ms,
            files_read: files,
            bytes_read: bytes,
        }
    }

    #[test]
    fn recovers_a_linear_cost_of_bytes_and_files() {
        // 200 ms fixed, 10 ms per MB, 2 ms per file, with a small wobble.
        let runs: Vec<RunSample> = (0..40u64)
            .map(|i| {
                let (mb, files) = (i * 7 % 50 + 1, i * 13 % 90 + 1);
                let wobble = [0, 5, 10, 5][i as usize % 4];
                run(mb * 1_000_000, files, 200 + mb * 10 + files * 2 + wobble)
            })
            .collect();
        let fit = Fit::new(&runs).expect("fit");
        let e = fit.expect(100_000_000, 50);
        assert!((e.ms - 1305.0).abs() < 20.0, "{e:?}");
        assert!(e.low_ms < e.ms && e.ms < e.high_ms);
        let (scored, median, inside) = backtest(&runs);
        assert_eq!(scored, 37);
        assert!(median < 0.05, "median error {median}");
        assert!(inside > 0.7, "inside {inside}");
    }

    #[test]
    fn identical_runs_fall_back_to_the_mean_and_too_few_to_none() {
        let same = vec![run(1000, 1, 50); 5];
        let e = Fit::new(&same).expect("fit").expect(1000, 1);
        assert!((e.ms - 50.0).abs() < 1e-6, "{e:?}");
        assert!(Fit::new(&same[..2]).is_none());
        assert_eq!(backtest(&same[..2]).0, 0);
    }
}
