//! Task names (`domain-task`) and the paper's per-task defaults.

use crate::{Error, Result};

/// The seven DeepMind Control tasks the paper reports (Tables 1, 2 and 6).
pub const PAPER_TASKS: [&str; 7] = [
    "cartpole-swingup",
    "reacher-easy",
    "finger-spin",
    "walker-walk",
    "cheetah-run",
    "ball_in_cup-catch",
    "cartpole-swingup_sparse",
];

/// Prefix of the domains implemented natively in Rust (no Python needed).
pub const NATIVE_PREFIX: &str = "native_";

/// A task name split into its dm_control domain and task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskName {
    pub domain: String,
    pub task: String,
}

impl TaskName {
    /// Parses `domain-task`; the domain is everything before the first `-`.
    pub fn parse(name: &str) -> Result<Self> {
        match name.split_once('-') {
            Some((domain, task)) if !domain.is_empty() && !task.is_empty() => {
                Ok(TaskName { domain: domain.to_owned(), task: task.to_owned() })
            }
            _ => Err(Error::UnknownTask {
                name: name.to_owned(),
                hint: "task names have the form `domain-task`, e.g. `cartpole-swingup`; \
                       `gradplan tasks --all` lists them"
                    .into(),
            }),
        }
    }

    /// Whether this task is implemented natively rather than by dm_control.
    pub fn is_native(&self) -> bool {
        self.domain.starts_with(NATIVE_PREFIX)
    }

    /// Action repeat R from the paper's Table 4 (PlaNet's per-domain values); 2 for domains
    /// the paper does not list, which is Dreamer's default.
    pub fn default_action_repeat(&self) -> usize {
        match self.domain.as_str() {
            "cartpole" => 8,
            "reacher" => 4,
            "finger" => 2,
            "cheetah" => 4,
            "ball_in_cup" => 6,
            "walker" => 2,
            _ => 2,
        }
    }

    /// Camera used for pixel observations: 0, except quadruped whose camera 0 does not
    /// follow the body (PlaNet and Dreamer use camera 2 there).
    pub fn default_camera(&self) -> i64 {
        if self.domain == "quadruped" {
            2
        } else {
            0
        }
    }
}

impl std::fmt::Display for TaskName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.domain, self.task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_underscores() {
        let t = TaskName::parse("ball_in_cup-catch").unwrap();
        assert_eq!((t.domain.as_str(), t.task.as_str()), ("ball_in_cup", "catch"));
        let t = TaskName::parse("cartpole-swingup_sparse").unwrap();
        assert_eq!(t.task, "swingup_sparse");
        assert_eq!(t.to_string(), "cartpole-swingup_sparse");
    }

    #[test]
    fn rejects_malformed_names() {
        for bad in ["cartpole", "-swingup", "cartpole-", ""] {
            assert!(matches!(TaskName::parse(bad), Err(Error::UnknownTask { .. })), "{bad}");
        }
    }

    #[test]
    fn paper_action_repeats() {
        let r = |n: &str| TaskName::parse(n).unwrap().default_action_repeat();
        assert_eq!(r("cartpole-swingup"), 8);
        assert_eq!(r("reacher-easy"), 4);
        assert_eq!(r("finger-spin"), 2);
        assert_eq!(r("cheetah-run"), 4);
        assert_eq!(r("ball_in_cup-catch"), 6);
        assert_eq!(r("walker-walk"), 2);
        assert_eq!(TaskName::parse("quadruped-walk").unwrap().default_camera(), 2);
    }
}
