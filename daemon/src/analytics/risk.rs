//! The risk score of a source, 0 (no known risk) to 100: a weighted sum of factors, each 0–1,
//! every one shown with its weight and the evidence behind it. The weights sum to 100.

/// What the score is computed from, per source.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inputs {
    /// Share of the source's jobs that failed over the last 7 days (0–1).
    pub recent_failure_rate: f64,
    /// Seconds since the last successful backup, and the source's RPO target.
    pub since_success_secs: Option<u64>,
    pub rpo_secs: u64,
    /// Anomalies raised for the source over the last 7 days.
    pub recent_anomalies: u32,
    /// Days since the repository was last checked successfully (`None`: never).
    pub days_since_check: Option<f64>,
    /// The repository has an up-to-date replica.
    pub has_replica: bool,
    /// Age of the repository's current data key, and the rotation policy (0: none).
    pub key_age_days: f64,
    pub key_rotation_days: f64,
    /// Days until the repository's disk is full at the current growth (`None`: not filling).
    pub days_to_full: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Factor {
    pub name: &'static str,
    pub weight: f64,
    /// 0–1: how much of the weight applies.
    pub level: f64,
    pub evidence: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Risk {
    pub score: f64,
    pub factors: Vec<Factor>,
}

/// Weights of the factors, in points of the 100.
pub const WEIGHTS: [(&str, f64); 7] = [
    ("recent_failures", 25.0),
    ("rpo", 25.0),
    ("anomalies", 15.0),
    ("unverified", 10.0),
    ("no_replica", 10.0),
    ("key_age", 5.0),
    ("disk_forecast", 10.0),
];

pub fn score(inputs: &Inputs) -> Risk {
    let levels: [(f64, String); 7] = [
        (
            (inputs.recent_failure_rate * 2.0).clamp(0.0, 1.0),
            format!(
                "{:.0} % of jobs failed in 7 days",
                inputs.recent_failure_rate * 100.0
            ),
        ),
        match inputs.since_success_secs {
            None => (1.0, "never backed up successfully".to_owned()),
            Some(age) => {
                let rpo = inputs.rpo_secs.max(1) as f64;
                (
                    ((age as f64 / rpo) - 1.0).clamp(0.0, 1.0),
                    format!("last success {age} s ago, RPO {} s", inputs.rpo_secs),
                )
            }
        },
        (
            (f64::from(inputs.recent_anomalies) / 3.0).clamp(0.0, 1.0),
            format!("{} anomalies in 7 days", inputs.recent_anomalies),
        ),
        match inputs.days_since_check {
            None => (1.0, "repository never checked".to_owned()),
            Some(days) => (
                ((days - 7.0) / 23.0).clamp(0.0, 1.0),
                format!("last successful check {days:.0} days ago"),
            ),
        },
        if inputs.has_replica {
            (0.0, "replicated".to_owned())
        } else {
            (1.0, "no replica".to_owned())
        },
        if inputs.key_rotation_days > 0.0 {
            (
                ((inputs.key_age_days / inputs.key_rotation_days) - 1.0).clamp(0.0, 1.0),
                format!(
                    "data key {:.0} days old, rotation every {:.0}",
                    inputs.key_age_days, inputs.key_rotation_days
                ),
            )
        } else {
            (0.0, "no rotation policy".to_owned())
        },
        match inputs.days_to_full {
            None => (0.0, "disk not filling".to_owned()),
            Some(days) => (
                (1.0 - days / 30.0).clamp(0.0, 1.0),
                format!("disk full in {days:.0} days"),
            ),
        },
    ];
    let factors: Vec<Factor> = WEIGHTS
        .iter()
        .zip(levels)
        .map(|((name, weight), (level, evidence))| Factor {
            name,
            weight: *weight,
            level,
            evidence,
        })
        .collect();
    let score = factors
        .iter()
        .map(|f| f.weight * f.level)
        .sum::<f64>()
        .clamp(0.0, 100.0);
    Risk { score, factors }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Inputs {
        Inputs {
            recent_failure_rate: 0.0,
            since_success_secs: Some(600),
            rpo_secs: 3600,
            recent_anomalies: 0,
            days_since_check: Some(1.0),
            has_replica: true,
            key_age_days: 30.0,
            key_rotation_days: 365.0,
            days_to_full: None,
        }
    }

    #[test]
    fn the_weights_sum_to_one_hundred() {
        assert_eq!(WEIGHTS.iter().map(|w| w.1).sum::<f64>(), 100.0);
    }

    #[test]
    fn a_healthy_source_scores_zero_and_says_why() {
        let risk = score(&healthy());
        assert_eq!(risk.score, 0.0);
        assert_eq!(risk.factors.len(), WEIGHTS.len());
        assert!(risk.factors.iter().all(|f| !f.evidence.is_empty()));
    }

    #[test]
    fn each_factor_raises_the_score_by_at_most_its_weight() {
        let cases: [(&str, Inputs); 7] = [
            (
                "recent_failures",
                Inputs {
                    recent_failure_rate: 0.9,
                    ..healthy()
                },
            ),
            (
                "rpo",
                Inputs {
                    since_success_secs: Some(100_000),
                    ..healthy()
                },
            ),
            (
                "anomalies",
                Inputs {
                    recent_anomalies: 5,
                    ..healthy()
                },
            ),
            (
                "unverified",
                Inputs {
                    days_since_check: None,
                    ..healthy()
                },
            ),
            (
                "no_replica",
                Inputs {
                    has_replica: false,
                    ..healthy()
                },
            ),
            (
                "key_age",
                Inputs {
                    key_age_days: 900.0,
                    ..healthy()
                },
            ),
            (
                "disk_forecast",
                Inputs {
                    days_to_full: Some(0.0),
                    ..healthy()
                },
            ),
        ];
        for (name, inputs) in cases {
            let risk = score(&inputs);
            let weight = WEIGHTS.iter().find(|w| w.0 == name).expect("weight").1;
            assert_eq!(risk.score, weight, "{name}: {risk:?}");
        }
    }

    #[test]
    fn everything_wrong_is_one_hundred() {
        let worst = Inputs {
            recent_failure_rate: 1.0,
            since_success_secs: None,
            rpo_secs: 3600,
            recent_anomalies: 10,
            days_since_check: None,
            has_replica: false,
            key_age_days: 1000.0,
            key_rotation_days: 90.0,
            days_to_full: Some(1.0),
        };
        let risk = score(&worst);
        assert!(risk.score > 99.0 && risk.score <= 100.0, "{risk:?}");
    }
}
