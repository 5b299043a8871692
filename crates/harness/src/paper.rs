//! The published numbers of S V, Jalagam, LeCun, Sobal (2023), for the reports to print
//! beside ours. Table 1: DMC 100k env steps from pixels, mean ± std over 10 test episodes
//! of 3 seeds. Table 2: sparse tasks, Dreamer pretrained for 500k env steps, 10 test
//! episodes of 3 seeds.

/// A published mean ± std.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Published {
    pub mean: f64,
    pub std: f64,
}

const fn p(mean: f64, std: f64) -> Published {
    Published { mean, std }
}

/// The methods (columns) of Table 1, in the paper's order.
pub const TABLE1_METHODS: [&str; 5] = ["SAC Pixels", "CURL", "PlaNet", "Dreamer", "Grad-MPC"];

/// Table 1's rows: our task name and the five columns of [`TABLE1_METHODS`].
pub const TABLE1: [(&str, [Published; 5]); 5] = [
    ("cartpole-swingup", [p(419.0, 40.0), p(597.0, 170.0), p(563.0, 73.0), p(326.0, 27.0), p(470.0, 55.0)]),
    ("reacher-easy", [p(145.0, 130.0), p(517.0, 113.0), p(82.0, 174.0), p(314.0, 155.0), p(663.0, 25.0)]),
    ("finger-spin", [p(166.0, 128.0), p(779.0, 108.0), p(560.0, 77.0), p(341.0, 70.0), p(660.0, 32.0)]),
    ("walker-walk", [p(42.0, 12.0), p(344.0, 132.0), p(221.0, 43.0), p(277.0, 12.0), p(237.0, 56.0)]),
    ("cheetah-run", [p(103.0, 38.0), p(307.0, 48.0), p(165.0, 123.0), p(235.0, 137.0), p(184.0, 81.0)]),
];

/// The columns of Table 2.
pub const TABLE2_METHODS: [&str; 2] = ["Pure Policy", "Policy+Grad-MPC"];

/// Table 2's rows: our task name, pure policy, Policy+Grad-MPC.
pub const TABLE2: [(&str, [Published; 2]); 2] = [
    ("ball_in_cup-catch", [p(608.5, 336.7), p(725.6, 237.3)]),
    ("cartpole-swingup_sparse", [p(639.5, 64.2), p(701.2, 40.3)]),
];

/// The published number of `method` on `task` in Table 1, if the paper has one.
pub fn table1(task: &str, method: &str) -> Option<Published> {
    let col = TABLE1_METHODS.iter().position(|m| *m == method)?;
    TABLE1.iter().find(|(t, _)| *t == task).map(|(_, row)| row[col])
}

/// The published number of `method` on `task` in Table 2, if the paper has one.
pub fn table2(task: &str, method: &str) -> Option<Published> {
    let col = TABLE2_METHODS.iter().position(|m| *m == method)?;
    TABLE2.iter().find(|(t, _)| *t == task).map(|(_, row)| row[col])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_match_the_paper() {
        assert_eq!(table1("reacher-easy", "Grad-MPC"), Some(p(663.0, 25.0)));
        assert_eq!(table1("cheetah-run", "PlaNet"), Some(p(165.0, 123.0)));
        assert_eq!(table2("cartpole-swingup_sparse", "Policy+Grad-MPC"), Some(p(701.2, 40.3)));
        assert_eq!(table1("hopper-hop", "Grad-MPC"), None);
        assert_eq!(table1("cartpole-swingup", "TD-MPC"), None);
    }
}
