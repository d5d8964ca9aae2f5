//! Whether a metric improves, holds or declines: the least-squares slope of its values over
//! time, and whether that slope is distinguishable from none (a two-sided t-test on the slope,
//! n − 2 degrees of freedom). A slope counts only when it is significant at `ALPHA` *and*
//! large enough to matter: at least `MIN_CHANGE` of the mean over `PER_DAYS` days.

use statrs::distribution::{ContinuousCDF, StudentsT};

pub const ALPHA: f64 = 0.05;
pub const MIN_CHANGE: f64 = 0.05;
pub const PER_DAYS: f64 = 30.0;
const MIN_POINTS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Improving,
    Stable,
    Declining,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Trend {
    pub direction: Direction,
    /// Change per day, in the metric's unit.
    pub slope_per_day: f64,
    /// Two-sided p-value of "the slope is zero"; 1 when it cannot be computed.
    pub p_value: f64,
    pub points: usize,
}

/// `points` as (day, value); `higher_is_better` says which way is improving (success rate,
/// throughput: yes; duration: no). `None` with fewer than five points.
pub fn trend(points: &[(f64, f64)], higher_is_better: bool) -> Option<Trend> {
    let points: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let n = points.len();
    if n < MIN_POINTS {
        return None;
    }
    let nf = n as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let slope = sxy / sxx;
    let intercept = mean_y - slope * mean_x;
    let residual: f64 = points
        .iter()
        .map(|p| (p.1 - intercept - slope * p.0).powi(2))
        .sum();
    let se = (residual / (nf - 2.0) / sxx).sqrt();
    let p_value = if se == 0.0 {
        if slope == 0.0 {
            1.0
        } else {
            0.0
        }
    } else {
        match StudentsT::new(0.0, 1.0, nf - 2.0) {
            Ok(t) => 2.0 * (1.0 - t.cdf((slope / se).abs())),
            Err(_) => 1.0,
        }
    };
    let matters = (slope * PER_DAYS).abs() >= MIN_CHANGE * mean_y.abs().max(f64::MIN_POSITIVE);
    let direction = if p_value < ALPHA && matters {
        if (slope > 0.0) == higher_is_better {
            Direction::Improving
        } else {
            Direction::Declining
        }
    } else {
        Direction::Stable
    };
    Some(Trend {
        direction,
        slope_per_day: slope,
        p_value,
        points: n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy(slope: f64) -> Vec<(f64, f64)> {
        // A fixed wobble instead of random noise: the same on every run.
        (0..60)
            .map(|d| {
                let wobble = [0.0, 1.5, -1.0, 0.5, -1.5, 1.0][d % 6];
                (d as f64, 100.0 + slope * d as f64 + wobble)
            })
            .collect()
    }

    #[test]
    fn a_clear_rise_is_improving_or_declining_by_the_metric() {
        let rising = noisy(0.5);
        let up = trend(&rising, true).expect("trend");
        assert_eq!(up.direction, Direction::Improving, "{up:?}");
        assert!(up.p_value < 0.001 && (up.slope_per_day - 0.5).abs() < 0.05);
        assert_eq!(
            trend(&rising, false).expect("trend").direction,
            Direction::Declining
        );
    }

    #[test]
    fn noise_without_a_slope_is_stable() {
        let flat = trend(&noisy(0.0), true).expect("trend");
        assert_eq!(flat.direction, Direction::Stable, "{flat:?}");
        assert!(flat.p_value > ALPHA, "{flat:?}");
    }

    /// Significant but negligible: 0.01 a day on a mean of 100 is 0.3 % a month.
    #[test]
    fn a_tiny_significant_slope_is_still_stable() {
        let points: Vec<(f64, f64)> = (0..60)
            .map(|d| (d as f64, 100.0 + 0.01 * d as f64))
            .collect();
        let tiny = trend(&points, true).expect("trend");
        assert_eq!(tiny.direction, Direction::Stable, "{tiny:?}");
    }

    #[test]
    fn too_few_or_degenerate_points_give_none() {
        assert_eq!(trend(&[(0.0, 1.0), (1.0, 2.0)], true), None);
        assert_eq!(trend(&[(3.0, 1.0); 6], true), None);
    }
}
