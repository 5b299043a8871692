//! The one translation from a run's `[planner]` settings (`gradplan_config::PlannerConfig`,
//! what TOML and `--set planner.KEY=VALUE` write) to the planners' own configurations.
//!
//! Every key a user can set reaches its planner here and nowhere else; the tests below
//! change each key and check that the planner sees it.

use crate::{
    CemConfig, GradCemConfig, GradMpcConfig, MppiConfig, Objective, PlannerConfig, PlannerKind,
    PolicyGradMpcConfig, PolicyPlannerConfig, RandomShootingConfig, Selection,
};
use gradplan_config::PlannerConfig as Settings;

/// σ₀ of the population methods and Grad-MPC when `planner.init_std` is unset: N(0, I),
/// Algorithm 1's line 2 and PlaNet's CEM.
const DEFAULT_INIT_STD: f64 = 1.0;

impl PlannerConfig {
    /// The planner a run's settings describe, I resolved. The policy planners take γ from
    /// `dreamer_discount` (the γ Dreamer's value was trained with); the others from
    /// `planner.discount`.
    pub fn from_settings(p: &Settings, dreamer_discount: f64) -> PlannerConfig {
        let objective =
            Objective { uncertainty_penalty: p.uncertainty_penalty, ..Objective::new(p.discount, false) };
        let optimizer = p.optimizer.unwrap_or_default();
        let init_std = p.init_std.unwrap_or(DEFAULT_INIT_STD);
        let (h, j, k, i) = (p.horizon as i64, p.candidates as i64, p.top_k as i64, p.iterations());
        match p.kind {
            PlannerKind::Cem => PlannerConfig::Cem(CemConfig {
                horizon: h,
                iterations: i,
                candidates: j,
                top_k: k,
                init_std,
                objective,
                ..Default::default()
            }),
            PlannerKind::RandomShooting => PlannerConfig::RandomShooting(RandomShootingConfig {
                horizon: h,
                candidates: j,
                init_std,
                objective,
            }),
            PlannerKind::GradMpc => PlannerConfig::GradMpc(grad_mpc(
                p,
                Objective { action_noise: p.smoothing_std, ..objective },
                init_std,
            )),
            PlannerKind::Mppi => PlannerConfig::Mppi(MppiConfig {
                horizon: h,
                iterations: i,
                candidates: j,
                init_std: p.mppi_noise_std,
                temperature: p.mppi_temperature,
                refit_std: p.mppi_refit_std,
                warm_start: p.warm_start.unwrap_or(false),
                objective,
            }),
            PlannerKind::GradCem => PlannerConfig::GradCem(GradCemConfig {
                horizon: h,
                iterations: i,
                candidates: j,
                top_k: k,
                init_std,
                gradient_steps: p.gradcem_steps,
                learning_rate: p.action_lr(),
                optimizer,
                grad_clip_per_step: p.grad_clip_per_step,
                objective,
            }),
            PlannerKind::Policy => PlannerConfig::Policy(PolicyPlannerConfig { discount: dreamer_discount }),
            PlannerKind::PolicyGradMpc => PlannerConfig::PolicyGradMpc(PolicyGradMpcConfig {
                horizon: p.hybrid_horizon as i64,
                candidates: p.hybrid_candidates as i64,
                iterations: i,
                learning_rate: p.action_lr(),
                optimizer,
                grad_clip_per_step: p.grad_clip_per_step,
                noise: p.hybrid_noise,
                objective: Objective {
                    uncertainty_penalty: p.uncertainty_penalty,
                    ..Objective::new(dreamer_discount, true)
                },
            }),
        }
    }
}

/// Grad-MPC: the flavour's settings under the explicit ones. With a screen (J_a < J) the
/// J population samples are scored forward-only and the best J_a are refined; without one
/// all J are refined, as in Algorithm 1.
fn grad_mpc(p: &Settings, objective: Objective, init_std: f64) -> GradMpcConfig {
    let fl = p.flavour.defaults();
    let j = p.candidates as i64;
    let refined = p.ascent_candidates.or(fl.ascent_candidates).map(|a| a as i64);
    let (candidates, presample) = match refined {
        Some(a) if a < j => (a, j),
        _ => (j, 0),
    };
    let elites = p.elite_mean.unwrap_or(fl.elite_mean) as i64;
    // A warm start can hold at most J − 1 copies beside the plan itself.
    let copies = (p.warm_start_copies.unwrap_or(fl.warm_start_copies) as i64).min(candidates - 1);
    GradMpcConfig {
        horizon: p.horizon as i64,
        iterations: p.iterations(),
        candidates,
        learning_rate: p.action_lr(),
        optimizer: p.grad_mpc_optimizer(),
        grad_clip_per_step: p.grad_clip_per_step,
        init_std,
        warm_start: p.warm_start.unwrap_or(fl.warm_start),
        warm_start_copies: copies,
        warm_start_noise: p.warm_start_noise.unwrap_or(fl.warm_start_noise),
        presample,
        // The flavour's N applies where there is a screen (J_a < J); one set explicitly is
        // checked by validate().
        screen_rounds: match p.screen_rounds {
            Some(n) => n,
            None if presample > 0 => fl.screen_rounds,
            None => 1,
        },
        screen_top_k: (p.top_k as i64).clamp(1, j),
        screen_round_samples: p.screen_round_samples.unwrap_or(fl.screen_round_samples) as i64,
        imagination_samples: p.imagination_samples.unwrap_or(fl.imagination_samples) as i64,
        selection: match elites {
            0 => Selection::Best,
            k => Selection::EliteMean { top_k: k.min(candidates) },
        },
        // κ = ∞ (TOML `inf`) spells out the unbounded ascent.
        trust_region: p.trust_region.filter(|k| k.is_finite()),
        selection_lcb: p.selection_lcb,
        objective,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ActionOptimizer;
    use gradplan_config::GradMpcFlavour;

    fn settings(kind: PlannerKind) -> Settings {
        Settings { kind, ..Settings::default() }
    }

    fn grad_mpc_of(p: &Settings) -> GradMpcConfig {
        match PlannerConfig::from_settings(p, 0.99) {
            PlannerConfig::GradMpc(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_kind_translates_to_its_planner_and_validates() {
        for kind in PlannerKind::ALL {
            let c = PlannerConfig::from_settings(&settings(kind), 0.99);
            assert_eq!(c.kind(), kind);
            c.validate().unwrap_or_else(|e| panic!("{kind}: {e}"));
        }
    }

    #[test]
    fn the_paper_flavour_is_algorithm_1() {
        let p = Settings { flavour: GradMpcFlavour::Paper, ..settings(PlannerKind::GradMpc) };
        assert_eq!(grad_mpc_of(&p), GradMpcConfig::paper());
    }

    #[test]
    fn the_robust_flavour_screens_refines_and_averages() {
        let p = settings(PlannerKind::GradMpc);
        let fl = GradMpcFlavour::Robust.defaults();
        let c = grad_mpc_of(&p);
        assert_eq!((c.presample, c.candidates), (1000, fl.ascent_candidates.unwrap() as i64));
        assert_eq!(c.iterations, fl.iterations);
        assert_eq!(c.optimizer, fl.optimizer);
        assert_eq!(c.warm_start, fl.warm_start);
        assert_eq!(c.warm_start_copies, fl.warm_start_copies as i64);
        assert_eq!(c.imagination_samples, fl.imagination_samples as i64);
        assert_eq!(c.screen_rounds, fl.screen_rounds);
        assert_eq!(c.screen_round_samples, fl.screen_round_samples as i64);
        assert_eq!(c.selection, Selection::EliteMean { top_k: fl.elite_mean as i64 });
        assert_eq!(c.trust_region, None);
        c.validate().unwrap();
    }

    #[test]
    fn every_grad_mpc_key_reaches_the_planner() {
        let p = Settings {
            horizon: 7,
            iterations: Some(9),
            candidates: 300,
            action_lr: Some(0.02),
            optimizer: Some(ActionOptimizer::Sgd),
            grad_clip_per_step: Some(0.5),
            warm_start: Some(false),
            init_std: Some(0.7),
            warm_start_copies: Some(2),
            warm_start_noise: Some(0.3),
            ascent_candidates: Some(40),
            screen_rounds: Some(3),
            screen_round_samples: Some(2),
            top_k: 25,
            imagination_samples: Some(3),
            elite_mean: Some(0),
            trust_region: Some(1.5),
            selection_lcb: Some(0.5),
            uncertainty_penalty: 2.5,
            smoothing_std: 0.2,
            discount: 0.9,
            ..settings(PlannerKind::GradMpc)
        };
        let c = grad_mpc_of(&p);
        let want = GradMpcConfig {
            horizon: 7,
            iterations: 9,
            candidates: 40,
            learning_rate: 0.02,
            optimizer: ActionOptimizer::Sgd,
            grad_clip_per_step: Some(0.5),
            init_std: 0.7,
            warm_start: false,
            warm_start_copies: 2,
            warm_start_noise: 0.3,
            presample: 300,
            screen_rounds: 3,
            screen_top_k: 25,
            screen_round_samples: 2,
            imagination_samples: 3,
            selection: Selection::Best,
            trust_region: Some(1.5),
            selection_lcb: Some(0.5),
            objective: Objective {
                uncertainty_penalty: 2.5,
                action_noise: 0.2,
                ..Objective::new(0.9, false)
            },
        };
        assert_eq!(c, want);
        // κ = inf (TOML `inf`) turns the region off.
        assert_eq!(
            grad_mpc_of(&Settings { trust_region: Some(f64::INFINITY), ..p.clone() }).trust_region,
            None
        );
        // J_a ≥ J means no screen: every candidate is refined.
        let c = grad_mpc_of(&Settings { ascent_candidates: Some(300), ..p.clone() });
        assert_eq!((c.candidates, c.presample), (300, 0));
        // The flavour's screen rounds then do not apply (small J, e.g. the debug preset's) ...
        let c0 = grad_mpc_of(&Settings { ascent_candidates: Some(300), screen_rounds: None, ..p.clone() });
        assert_eq!(c0.screen_rounds, 1);
        c0.validate().unwrap();
        // ... and rounds set explicitly have nothing to refit: an error that names the key.
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("screen_rounds") && e.contains("ascent_candidates"), "{e}");
        // K and the copies are capped by J_a, so no flavour/size mix is invalid.
        let c = grad_mpc_of(&Settings {
            ascent_candidates: Some(2),
            elite_mean: Some(8),
            warm_start_copies: Some(5),
            ..p
        });
        assert_eq!((c.selection, c.warm_start_copies), (Selection::EliteMean { top_k: 2 }, 1));
        c.validate().unwrap();
    }

    #[test]
    fn population_keys_reach_cem_mppi_gradcem_and_the_hybrid() {
        let base = Settings {
            horizon: 5,
            iterations: Some(3),
            candidates: 50,
            top_k: 7,
            init_std: Some(0.5),
            mppi_noise_std: 0.4,
            mppi_temperature: 0.2,
            mppi_refit_std: false,
            warm_start: Some(true),
            gradcem_steps: 2,
            optimizer: Some(ActionOptimizer::Adam),
            hybrid_horizon: 3,
            hybrid_candidates: 4,
            hybrid_noise: 0.1,
            uncertainty_penalty: 0.5,
            smoothing_std: 0.4, // Grad-MPC's alone: no other planner's objective perturbs
            ..Settings::default()
        };
        let of = |kind| PlannerConfig::from_settings(&Settings { kind, ..base.clone() }, 0.95);
        // λ reaches every objective; the hybrid's γ is Dreamer's.
        let penalised = Objective { uncertainty_penalty: 0.5, ..Objective::new(1.0, false) };
        let PlannerConfig::Cem(c) = of(PlannerKind::Cem) else { panic!() };
        assert_eq!((c.horizon, c.iterations, c.candidates, c.top_k, c.init_std), (5, 3, 50, 7, 0.5));
        assert_eq!(c.objective, penalised);
        let PlannerConfig::RandomShooting(c) = of(PlannerKind::RandomShooting) else { panic!() };
        assert_eq!((c.candidates, c.init_std, c.objective), (50, 0.5, penalised));
        let PlannerConfig::Mppi(c) = of(PlannerKind::Mppi) else { panic!() };
        assert_eq!((c.init_std, c.temperature, c.refit_std, c.warm_start), (0.4, 0.2, false, true));
        assert_eq!(c.objective, penalised);
        let PlannerConfig::GradCem(c) = of(PlannerKind::GradCem) else { panic!() };
        assert_eq!((c.gradient_steps, c.init_std, c.optimizer), (2, 0.5, ActionOptimizer::Adam));
        assert_eq!(c.objective, penalised);
        let PlannerConfig::PolicyGradMpc(c) = of(PlannerKind::PolicyGradMpc) else { panic!() };
        assert_eq!((c.horizon, c.candidates, c.noise), (3, 4, 0.1));
        assert_eq!(c.objective, Objective { uncertainty_penalty: 0.5, ..Objective::new(0.95, true) });
        let PlannerConfig::Policy(c) = of(PlannerKind::Policy) else { panic!() };
        assert_eq!(c.discount, 0.95);
    }
}
