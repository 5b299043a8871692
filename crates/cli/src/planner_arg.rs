//! `--planner`: parsed as the workspace's one [`PlannerKind`], each value with its help line.

use clap::builder::PossibleValue;
use gradplan_config::PlannerKind;

/// A planner kind as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannerArg(pub PlannerKind);

/// [`PlannerKind::ALL`], as clap needs a slice of the wrapper.
const VARIANTS: [PlannerArg; 7] = {
    let all = PlannerKind::ALL;
    [
        PlannerArg(all[0]),
        PlannerArg(all[1]),
        PlannerArg(all[2]),
        PlannerArg(all[3]),
        PlannerArg(all[4]),
        PlannerArg(all[5]),
        PlannerArg(all[6]),
    ]
};

impl clap::ValueEnum for PlannerArg {
    fn value_variants<'a>() -> &'a [Self] {
        &VARIANTS
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.0.name()).help(self.0.summary()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn every_planner_is_a_value_with_help() {
        assert_eq!(PlannerArg::value_variants().len(), PlannerKind::ALL.len());
        for kind in PlannerKind::ALL {
            let parsed = PlannerArg::from_str(kind.name(), false).unwrap();
            assert_eq!(parsed.0, kind);
            assert!(parsed.to_possible_value().unwrap().get_help().is_some());
        }
        assert!(PlannerArg::from_str("gradmpc", false).is_err());
    }
}
