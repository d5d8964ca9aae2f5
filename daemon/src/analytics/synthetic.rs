//! Deterministic job histories for the backtest: a seed and a list of regimes give the same
//! outcomes on every machine.
//!
//! A history is `days` long with `jobs_per_day` jobs evenly spaced. Each regime sets the
//! failure probability of the days it covers; days outside every regime fail with
//! `base_failure`. The standard set (`standard`) models what a backup source goes through: a
//! quiet baseline (1 % failures), a degraded fortnight (a filling disk: 25 %), a one-day outage
//! (100 %) and recovery.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Regime {
    pub from_day: u32,
    pub to_day: u32,
    pub failure: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub seed: u64,
    pub days: u32,
    pub jobs_per_day: u32,
    pub base_failure: f64,
    pub regimes: Vec<Regime>,
}

/// One generated job: when (days from the start) and whether it succeeded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Job {
    pub day: f64,
    pub success: bool,
}

impl Spec {
    /// 120 days, 24 jobs a day: baseline, a degraded fortnight, an outage, recovery.
    pub fn standard(seed: u64) -> Self {
        Self {
            seed,
            days: 120,
            jobs_per_day: 24,
            base_failure: 0.01,
            regimes: vec![
                Regime {
                    from_day: 40,
                    to_day: 54,
                    failure: 0.25,
                },
                Regime {
                    from_day: 80,
                    to_day: 81,
                    failure: 1.0,
                },
            ],
        }
    }

    pub fn generate(&self) -> Vec<Job> {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut jobs = Vec::with_capacity((self.days * self.jobs_per_day) as usize);
        for day in 0..self.days {
            let failure = self
                .regimes
                .iter()
                .find(|r| (r.from_day..r.to_day).contains(&day))
                .map_or(self.base_failure, |r| r.failure);
            for i in 0..self.jobs_per_day {
                jobs.push(Job {
                    day: f64::from(day) + f64::from(i) / f64::from(self.jobs_per_day),
                    success: rng.random::<f64>() >= failure,
                });
            }
        }
        jobs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_history() {
        assert_eq!(Spec::standard(7).generate(), Spec::standard(7).generate());
        assert_ne!(Spec::standard(7).generate(), Spec::standard(8).generate());
    }

    #[test]
    fn regimes_set_the_failure_rate_of_their_days() {
        let jobs = Spec::standard(1).generate();
        let rate = |from: f64, to: f64| {
            let window: Vec<&Job> = jobs
                .iter()
                .filter(|j| j.day >= from && j.day < to)
                .collect();
            window.iter().filter(|j| !j.success).count() as f64 / window.len() as f64
        };
        assert!(rate(0.0, 40.0) < 0.03);
        assert!((rate(40.0, 54.0) - 0.25).abs() < 0.06);
        assert_eq!(rate(80.0, 81.0), 1.0);
    }
}
