//! One metric's recent values for one source, and the three-sigma rule over them.
//!
//! Centre and spread are the median and the scaled median absolute deviation (1.4826 × MAD, the
//! standard deviation for normal data) rather than the mean and the standard deviation: one
//! earlier outlier (a first full backup, an anomaly already reported) then moves neither, so the
//! next ordinary value is not judged against a baseline it distorted. A lasting change becomes
//! the new normal as it fills the window.

use std::collections::VecDeque;

/// Values kept per metric and source.
pub const WINDOW: usize = 30;
/// No judgement before this many values.
pub const MIN_OBSERVATIONS: usize = 10;
/// Distance from the centre, in robust standard deviations, beyond which a value is anomalous.
pub const SIGMAS: f64 = 3.0;
/// The spread is never taken as less than this share of the centre: a metric that was constant
/// so far (a ratio of exactly 1.0, a fixed file count) would otherwise call any change infinite.
const RELATIVE_FLOOR: f64 = 0.05;
/// MAD to standard deviation for normally distributed values.
const MAD_TO_SIGMA: f64 = 1.4826;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Baseline {
    values: VecDeque<f64>,
}

/// A value judged against its baseline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Judgement {
    pub value: f64,
    /// The baseline's centre (median).
    pub expected: f64,
    /// `expected ± SIGMAS × spread`.
    pub low: f64,
    pub high: f64,
    /// Signed distance from the centre in robust standard deviations.
    pub sigmas: f64,
}

impl Judgement {
    pub fn is_anomaly(&self) -> bool {
        self.sigmas.abs() > SIGMAS
    }
}

impl Baseline {
    pub fn from_values(values: impl IntoIterator<Item = f64>) -> Self {
        let mut baseline = Self::default();
        for value in values {
            baseline.push(value);
        }
        baseline
    }

    /// The values kept, oldest first.
    pub fn values(&self) -> Vec<f64> {
        self.values.iter().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Adds a value, forgetting the oldest beyond `WINDOW`. Values that are not finite are not
    /// measurements and are ignored.
    pub fn push(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        if self.values.len() == WINDOW {
            self.values.pop_front();
        }
        self.values.push_back(value);
    }

    /// `value` against the values so far; `None` until there are `MIN_OBSERVATIONS`.
    pub fn judge(&self, value: f64) -> Option<Judgement> {
        self.judge_at_least(value, 0.0)
    }

    /// As [`Baseline::judge`], with the standard deviation taken as at least `floor`: a
    /// backup of one file that takes 80 ms instead of 40 ms is not news, however steady the
    /// source was.
    pub fn judge_at_least(&self, value: f64, floor: f64) -> Option<Judgement> {
        if self.values.len() < MIN_OBSERVATIONS || !value.is_finite() {
            return None;
        }
        let mut sorted: Vec<f64> = self.values.iter().copied().collect();
        let centre = median(&mut sorted);
        let mut deviations: Vec<f64> = sorted.iter().map(|v| (v - centre).abs()).collect();
        let spread = (MAD_TO_SIGMA * median(&mut deviations))
            .max(RELATIVE_FLOOR * centre.abs())
            .max(floor)
            .max(f64::MIN_POSITIVE);
        Some(Judgement {
            value,
            expected: centre,
            low: centre - SIGMAS * spread,
            high: centre + SIGMAS * spread,
            sigmas: (value - centre) / spread,
        })
    }
}

/// The median of `values` (sorted in place); 0 for none.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ordinary() -> Vec<f64> {
        // Durations in seconds of ordinary incremental backups.
        vec![
            30.0, 32.0, 29.0, 31.0, 35.0, 28.0, 30.0, 33.0, 31.0, 29.0, 30.0, 34.0,
        ]
    }

    #[test]
    fn no_judgement_before_ten_values() {
        let baseline = Baseline::from_values(ordinary().into_iter().take(9));
        assert_eq!(baseline.judge(1000.0), None);
        let baseline = Baseline::from_values(ordinary().into_iter().take(10));
        assert!(baseline.judge(1000.0).expect("judged").is_anomaly());
    }

    #[test]
    fn ordinary_values_pass_and_a_far_one_is_an_anomaly_with_its_range() {
        let baseline = Baseline::from_values(ordinary());
        let ok = baseline.judge(33.0).expect("judged");
        assert!(!ok.is_anomaly(), "{ok:?}");
        let slow = baseline.judge(90.0).expect("judged");
        assert!(slow.is_anomaly() && slow.sigmas > 3.0, "{slow:?}");
        assert!(
            slow.low < 30.5 && slow.high > 30.5 && slow.high < 90.0,
            "{slow:?}"
        );
        let fast = baseline.judge(1.0).expect("judged");
        assert!(fast.is_anomaly() && fast.sigmas < -3.0, "{fast:?}");
    }

    /// A first full backup 100 times larger than the incrementals that follow does not widen
    /// the baseline: a tenfold incremental is still an anomaly.
    #[test]
    fn one_huge_first_run_does_not_hide_later_anomalies() {
        let mut values = vec![3000.0];
        values.extend(ordinary());
        let baseline = Baseline::from_values(values);
        assert!(baseline.judge(300.0).expect("judged").is_anomaly());
        assert!(!baseline.judge(31.0).expect("judged").is_anomaly());
    }

    /// A constant metric (spread 0) still judges by the relative floor, not by infinity.
    #[test]
    fn a_constant_metric_uses_the_floor() {
        let baseline = Baseline::from_values(std::iter::repeat_n(2.0, 12));
        let near = baseline.judge(2.1).expect("judged");
        assert!(!near.is_anomaly(), "{near:?}");
        let far = baseline.judge(1.0).expect("judged");
        assert!(far.is_anomaly() && far.sigmas.is_finite(), "{far:?}");
    }

    #[test]
    fn a_lasting_change_becomes_the_new_normal() {
        let mut baseline = Baseline::from_values(ordinary());
        assert!(baseline.judge(60.0).expect("judged").is_anomaly());
        for _ in 0..WINDOW {
            baseline.push(60.0 + (baseline.len() % 3) as f64);
        }
        assert!(!baseline.judge(61.0).expect("judged").is_anomaly());
        assert_eq!(baseline.len(), WINDOW);
    }

    #[test]
    fn values_that_are_not_finite_are_ignored() {
        let mut baseline = Baseline::from_values(ordinary());
        let n = baseline.len();
        baseline.push(f64::NAN);
        baseline.push(f64::INFINITY);
        assert_eq!(baseline.len(), n);
        assert_eq!(baseline.judge(f64::NAN), None);
    }
}
