//! The success rate of a source's jobs over the next days: a Beta-Binomial model whose
//! evidence decays with age.
//!
//! Each finished job is a Bernoulli trial. Its weight halves every `half_life_days` of age, so a
//! week of failures last month counts for less than one yesterday. The posterior is
//! Beta(prior_success + Σ w·success, prior_failure + Σ w·failure); its mean is the predicted rate
//! and its 5 % and 95 % quantiles the interval. For a horizon of H days the ages are taken at
//! the horizon's midpoint (age + H/2): the further ahead, the older today's evidence will be,
//! the wider the interval.

use statrs::distribution::{Beta, ContinuousCDF};

/// One finished job: how long ago, and whether it succeeded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    pub age_days: f64,
    pub success: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Model {
    pub half_life_days: f64,
    /// Pseudo-observations before any job: Beta(1, 1) is "any rate is as likely".
    pub prior_success: f64,
    pub prior_failure: f64,
}

impl Default for Model {
    fn default() -> Self {
        Self {
            half_life_days: 14.0,
            prior_success: 1.0,
            prior_failure: 1.0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    /// Expected share of jobs that succeed over the horizon, 0–1.
    pub rate: f64,
    /// The 90 % credible interval.
    pub low: f64,
    pub high: f64,
    /// Weighted jobs behind the prediction (how much it rests on).
    pub evidence: f64,
}

impl Model {
    pub fn predict(&self, history: &[Outcome], horizon_days: f64) -> Prediction {
        let counts: Vec<(f64, u32, u32)> = history
            .iter()
            .map(|o| (o.age_days, u32::from(o.success), u32::from(!o.success)))
            .collect();
        self.predict_counts(&counts, horizon_days)
    }

    /// As [`Model::predict`] from (age in days, successes, failures) groups: a day's jobs
    /// counted together, as the per-source statistics keep them.
    pub fn predict_counts(&self, history: &[(f64, u32, u32)], horizon_days: f64) -> Prediction {
        let midpoint = horizon_days.max(0.0) / 2.0;
        let (mut successes, mut failures) = (0.0, 0.0);
        for (age, ok, failed) in history {
            let age = age.max(0.0) + midpoint;
            let weight = 0.5f64.powf(age / self.half_life_days);
            successes += weight * f64::from(*ok);
            failures += weight * f64::from(*failed);
        }
        let a = self.prior_success + successes;
        let b = self.prior_failure + failures;
        let rate = a / (a + b);
        // Both shapes are positive and finite (priors > 0, weights in (0, 1]), which is all
        // Beta::new checks; fall back to the mean if a prior was configured as 0.
        let (low, high) = match Beta::new(a, b) {
            Ok(beta) => (beta.inverse_cdf(0.05), beta.inverse_cdf(0.95)),
            Err(_) => (rate, rate),
        };
        Prediction {
            rate,
            low,
            high,
            evidence: successes + failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(days: u32, per_day: u32, fail_every: u32) -> Vec<Outcome> {
        let mut out = Vec::new();
        for day in 0..days {
            for i in 0..per_day {
                let n = day * per_day + i;
                out.push(Outcome {
                    age_days: f64::from(day) + f64::from(i) / f64::from(per_day),
                    success: fail_every == 0 || !n.is_multiple_of(fail_every),
                });
            }
        }
        out
    }

    #[test]
    fn a_reliable_source_predicts_near_one_with_a_tight_interval() {
        let p = Model::default().predict(&runs(30, 24, 0), 7.0);
        assert!(p.rate > 0.99, "{p:?}");
        assert!(p.low > 0.97 && p.high <= 1.0 && p.low < p.rate, "{p:?}");
    }

    #[test]
    fn one_failure_in_ten_predicts_about_ninety_percent() {
        let p = Model::default().predict(&runs(30, 24, 10), 7.0);
        assert!((p.rate - 0.9).abs() < 0.02, "{p:?}");
        assert!(p.low < 0.9 && p.high > 0.9, "{p:?}");
    }

    #[test]
    fn no_history_is_the_prior_with_a_wide_interval() {
        let p = Model::default().predict(&[], 7.0);
        assert!((p.rate - 0.5).abs() < 1e-9);
        assert!(p.high - p.low > 0.8, "{p:?}");
        assert_eq!(p.evidence, 0.0);
    }

    /// Recent failures weigh more than old ones.
    #[test]
    fn recent_failures_count_more_than_old_ones() {
        let recent: Vec<Outcome> = (0..40)
            .map(|i| Outcome {
                age_days: f64::from(i),
                success: i >= 5,
            })
            .collect();
        let old: Vec<Outcome> = (0..40)
            .map(|i| Outcome {
                age_days: f64::from(i),
                success: i < 35,
            })
            .collect();
        let model = Model::default();
        assert!(model.predict(&recent, 7.0).rate < model.predict(&old, 7.0).rate);
    }

    /// The further ahead, the less today's evidence says: the interval widens.
    #[test]
    fn a_longer_horizon_widens_the_interval() {
        let history = runs(30, 4, 10);
        let model = Model::default();
        let week = model.predict(&history, 7.0);
        let quarter = model.predict(&history, 90.0);
        assert!(
            quarter.high - quarter.low > week.high - week.low,
            "{week:?} {quarter:?}"
        );
        assert!(quarter.evidence < week.evidence);
    }
}
