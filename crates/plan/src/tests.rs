//! Tests every planner shares: the objective and its gradient, bounds, seeding, accounting.

use super::*;
use crate::testing::{Audited, LinearQuadratic, LqOptimum};

/// tch's generator is process-wide and tests run on parallel threads: every test that seeds
/// it holds this lock, so that no other test draws from the generator in between.
pub(crate) fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Checks a plan against the analytic optimum: the return of the planned sequence (simulated
/// in f64, not the model's report) is within `rel_gap` of R*, and the first action within
/// `action_tol` (max norm) of a*_0. Prints both so the measured gaps can be read with
/// `cargo test -- --nocapture`.
pub(crate) fn assert_near_optimum(
    name: &str,
    lq: &LinearQuadratic,
    x0: &[f64],
    plan: &Plan,
    optimum: &LqOptimum,
    rel_gap: f64,
    action_tol: f64,
) {
    let achieved = assert_achieves(name, lq, x0, plan, optimum, rel_gap, action_tol);
    // The reported return is the model's return of the reported sequence.
    assert!(
        (plan.predicted_return - achieved).abs() < 1e-4 * achieved.abs().max(1.0),
        "{name}: predicted {} vs simulated {achieved}",
        plan.predicted_return
    );
}

/// [`assert_near_optimum`] without the check of the planner's own prediction (for
/// objectives other than `lq`'s plain return); returns the achieved R.
pub(crate) fn assert_achieves(
    name: &str,
    lq: &LinearQuadratic,
    x0: &[f64],
    plan: &Plan,
    optimum: &LqOptimum,
    rel_gap: f64,
    action_tol: f64,
) -> f64 {
    let sequence = Vec::<f64>::try_from(plan.sequence.to_kind(Kind::Double).flatten(0, -1)).unwrap();
    let achieved = lq.simulate_return(x0, &sequence, Objective::default());
    let gap = (optimum.ret - achieved) / optimum.ret.abs();
    let first =
        plan.action.iter().zip(&optimum.actions).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
    eprintln!(
        "{name}: R* = {:.6}, R = {achieved:.6}, gap {gap:.2e}, first action off by {first:.2e}",
        optimum.ret
    );
    // f32 rounding can put a converged plan a hair above R*.
    assert!(gap > -1e-5, "{name} beats the optimum: {achieved} > {}", optimum.ret);
    assert!(gap < rel_gap, "{name}: relative gap {gap:.2e} to R* = {} (R = {achieved})", optimum.ret);
    assert!(first < action_tol, "{name}: first action {:?} vs {:?}", plan.action, &optimum.actions[..2]);
    achieved
}

/// Small, fast settings of each planner.
fn small(kind: PlannerKind, horizon: i64) -> PlannerConfig {
    let (candidates, iterations) = (64, 3);
    match kind {
        PlannerKind::Cem => {
            PlannerConfig::Cem(CemConfig { horizon, iterations, candidates, top_k: 8, ..Default::default() })
        }
        PlannerKind::RandomShooting => {
            PlannerConfig::RandomShooting(RandomShootingConfig { horizon, candidates, ..Default::default() })
        }
        PlannerKind::GradMpc => PlannerConfig::GradMpc(GradMpcConfig {
            horizon,
            iterations,
            candidates,
            warm_start: true,
            warm_start_copies: 3,
            ..Default::default()
        }),
        PlannerKind::Mppi => PlannerConfig::Mppi(MppiConfig {
            horizon,
            iterations,
            candidates,
            warm_start: true,
            ..Default::default()
        }),
        PlannerKind::GradCem => PlannerConfig::GradCem(GradCemConfig {
            horizon,
            iterations,
            candidates,
            top_k: 8,
            gradient_steps: 2,
            ..Default::default()
        }),
        PlannerKind::Policy | PlannerKind::PolicyGradMpc => PlannerConfig::defaults(kind),
    }
}

/// Every model-based planner, with its defaults and `objective`.
fn model_planners_with(objective: Objective) -> [PlannerConfig; 5] {
    [
        PlannerConfig::Cem(CemConfig { objective, ..Default::default() }),
        PlannerConfig::RandomShooting(RandomShootingConfig { objective, ..Default::default() }),
        PlannerConfig::GradMpc(GradMpcConfig { objective, ..Default::default() }),
        PlannerConfig::Mppi(MppiConfig { objective, ..Default::default() }),
        PlannerConfig::GradCem(GradCemConfig { objective, ..Default::default() }),
    ]
}

fn flat(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

#[test]
fn rollout_return_matches_the_f64_simulator() {
    let _rng = rng_lock();
    let lq = LinearQuadratic::example(Kind::Double).with_value(0.7);
    let x0 = LinearQuadratic::EXAMPLE_START;
    tch::manual_seed(0);
    let actions = Tensor::randn([5, 3, 2], (Kind::Double, Device::Cpu)); // [H, J, A]
    for objective in [Objective::default(), Objective::new(0.9, true)] {
        let returns = flat(&objective.returns(&lq, &lq.start(&x0), &actions));
        for (j, r) in returns.iter().enumerate() {
            let want = lq.simulate_return(&x0, &flat(&actions.select(1, j as i64)), objective);
            assert!((r - want).abs() < 1e-12 * want.abs().max(1.0), "{objective:?} j={j}: {r} vs {want}");
        }
    }
}

#[test]
fn rollout_return_gradient_matches_central_differences() {
    let _rng = rng_lock();
    // f64 throughout. R is quadratic in the actions, so the central difference has no
    // truncation error and only rounding (~1e-16·|R|/ε ≈ 1e-10) remains; the stated bound is a
    // relative error below 1e-6, per element (relative to max(|fd|, 1e-3)) and for the whole
    // gradient. Measured: 3e-8 worst element, 1e-9 whole gradient.
    let lq = LinearQuadratic::example(Kind::Double).with_value(0.7);
    let start = lq.start(&LinearQuadratic::EXAMPLE_START);
    tch::manual_seed(1);
    let actions = Tensor::randn([4, 3, 2], (Kind::Double, Device::Cpu));
    let (worst, relative) = gradient_error(|a| rollout_return(&lq, &start, a, 0.9, true), &actions);
    eprintln!("gradient check: worst element {worst:.1e}, whole gradient {relative:.1e}");
    assert!(worst < 1e-6 && relative < 1e-6, "worst {worst:e}, overall {relative:e}");
}

/// Autograd's gradient of `Σ_j returns(a)_j` at the f64 `actions` against central
/// differences (ε = 1e-6): the worst element's relative error (relative to max(|fd|, 1e-3))
/// and the whole gradient's.
fn gradient_error(returns: impl Fn(&Tensor) -> Tensor, actions: &Tensor) -> (f64, f64) {
    let a = actions.detach().set_requires_grad(true);
    let grad = flat(&Tensor::run_backward(&[returns(&a).sum(Kind::Double)], &[&a], false, false)[0]);
    let total = |x: &Tensor| tch::no_grad(|| returns(x).sum(Kind::Double).double_value(&[]));
    let base = flat(actions);
    let eps = 1e-6;
    let mut worst: f64 = 0.0;
    let (mut err2, mut norm2) = (0.0, 0.0);
    for (i, g) in grad.iter().enumerate() {
        let bump = |d: f64| {
            let mut v = base.clone();
            v[i] += d;
            Tensor::from_slice(&v).view(actions.size().as_slice())
        };
        let fd = (total(&bump(eps)) - total(&bump(-eps))) / (2.0 * eps);
        worst = worst.max((g - fd).abs() / fd.abs().max(1e-3));
        err2 += (g - fd).powi(2);
        norm2 += fd.powi(2);
    }
    (worst, (err2 / norm2).sqrt())
}

/// λ Σ_t γ^t max(|a_t|²/c² − 1, 0) for one time-major sequence of 2-dim actions: the penalty
/// [`Objective`] subtracts for [`LinearQuadratic::with_uncertainty`]'s u, in plain f64.
fn penalty_by_hand(actions: &[f64], radius: f64, lambda: f64, discount: f64) -> f64 {
    let mut weight = 1.0;
    let mut total = 0.0;
    for a in actions.chunks(2) {
        total += weight * lambda * ((a[0] * a[0] + a[1] * a[1]) / (radius * radius) - 1.0).max(0.0);
        weight *= discount;
    }
    total
}

#[test]
fn the_uncertainty_penalty_costs_only_transitions_beyond_the_data_edge() {
    let _rng = rng_lock();
    let (radius, lambda) = (0.8, 0.7);
    let lq = LinearQuadratic::example(Kind::Double).with_value(0.7).with_uncertainty(radius);
    let x0 = LinearQuadratic::EXAMPLE_START;
    tch::manual_seed(2);
    let actions = Tensor::randn([5, 6, 2], (Kind::Double, Device::Cpu)) * 0.8; // some inside, some out
    let all = flat(&actions);
    let inside = all.chunks(2).filter(|a| a[0] * a[0] + a[1] * a[1] < radius * radius).count();
    assert!(inside > 3 && inside < 27, "both sides of the edge: {inside} of 30 inside");
    let base = Objective::new(0.9, true);
    let penalised = Objective { uncertainty_penalty: lambda, ..base };
    let returns = flat(&penalised.returns(&lq, &lq.start(&x0), &actions));
    let plain = flat(&base.returns(&lq, &lq.start(&x0), &actions));
    for (j, (r, p)) in returns.iter().zip(&plain).enumerate() {
        let seq = flat(&actions.select(1, j as i64));
        let want = lq.simulate_return(&x0, &seq, base) - penalty_by_hand(&seq, radius, lambda, 0.9);
        assert!((r - want).abs() < 1e-12 * want.abs().max(1.0), "j={j}: {r} vs {want}");
        // λ = 0 is the paper's objective, whatever the dynamics knows.
        assert!((p - lq.simulate_return(&x0, &seq, base)).abs() < 1e-12 * p.abs().max(1.0));
    }
    // A sequence inside the data pays nothing.
    let small = &actions * 0.01;
    assert!(flat(&penalised.returns(&lq, &lq.start(&x0), &small))
        .iter()
        .zip(flat(&base.returns(&lq, &lq.start(&x0), &small)))
        .all(|(a, b)| a == &b));
}

#[test]
fn the_penalised_return_gradient_matches_central_differences() {
    let _rng = rng_lock();
    // The hinge is not differentiable on the sphere |a| = c, which random draws miss; away
    // from it R is piecewise quadratic and the central difference is exact up to rounding.
    let lq = LinearQuadratic::example(Kind::Double).with_uncertainty(0.8);
    let x0 = LinearQuadratic::EXAMPLE_START;
    let start = lq.start(&x0);
    let objective = Objective { uncertainty_penalty: 0.7, ..Objective::new(0.9, false) };
    tch::manual_seed(3);
    let actions = Tensor::randn([4, 3, 2], (Kind::Double, Device::Cpu)) * 0.8;
    let (worst, _) = gradient_error(|a| objective.returns(&lq, &start, a), &actions);
    assert!(worst < 1e-6, "worst relative error {worst:e}");
}

#[test]
fn planners_reach_the_optimum_of_the_penalised_objective() {
    let _rng = rng_lock();
    // With c below every |a*_t|, every hinge is active near the optimum and the penalised
    // objective is R with action cost ρ + λ/c², plus λH: a concave problem with a known
    // optimum. Both planners must find it, not the unpenalised one.
    let (radius, lambda, horizon) = (0.02, 0.0008, 4i64);
    let x0 = LinearQuadratic::EXAMPLE_START;
    let lq = LinearQuadratic::example(Kind::Float).with_uncertainty(radius);
    let shifted = LinearQuadratic::example(Kind::Double).with_action_cost(0.5 + lambda / (radius * radius));
    let optimum = shifted.optimum(&x0, horizon as usize, Objective::default());
    let norms: Vec<f64> = optimum.actions.chunks(2).map(|a| a[0].hypot(a[1])).collect();
    assert!(norms.iter().all(|n| *n > 1.5 * radius), "every hinge active at the optimum: {norms:?}");
    let plain = LinearQuadratic::example(Kind::Double).optimum(&x0, horizon as usize, Objective::default());
    let moved = plain.actions.iter().zip(&optimum.actions).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(moved > 0.05, "the penalty moves the optimum: {moved}");
    let objective = Objective { uncertainty_penalty: lambda, ..Objective::default() };
    let configs = [
        PlannerConfig::GradMpc(GradMpcConfig {
            horizon,
            candidates: 16,
            iterations: 300,
            learning_rate: 0.01,
            optimizer: ActionOptimizer::Adam,
            objective,
            ..Default::default()
        }),
        PlannerConfig::Cem(CemConfig { horizon, objective, ..Default::default() }),
    ];
    for config in configs {
        tch::manual_seed(0);
        let plan = config.init().plan(&lq, &lq.start(&x0)).unwrap();
        let name = config.kind().to_string();
        // The penalised return is the shifted problem's plus λH.
        let achieved =
            assert_achieves(&name, &shifted, &x0, &plan, &optimum, 1e-3, 2e-2) + lambda * horizon as f64;
        assert!((plan.predicted_return - achieved).abs() < 1e-3, "{} vs {achieved}", plan.predicted_return);
    }
}

#[test]
fn a_penalty_needs_a_model_with_an_uncertainty() {
    let _rng = rng_lock();
    let objective = Objective { uncertainty_penalty: 1.0, ..Objective::default() };
    let configs = model_planners_with(objective);
    let lq = LinearQuadratic::example(Kind::Float);
    let start = lq.start(&LinearQuadratic::EXAMPLE_START);
    for config in &configs {
        let err = config.init().plan(&lq, &start).unwrap_err();
        assert!(matches!(err, Error::NoUncertainty(_)), "{}: {err}", config.kind());
        assert!(err.to_string().contains("gradplan ensemble"), "{err}");
    }
    let negative = Objective { uncertainty_penalty: -1.0, ..Objective::default() };
    let err = PlannerConfig::Cem(CemConfig { objective: negative, ..Default::default() })
        .init()
        .plan(&lq.with_uncertainty(1.0), &start)
        .unwrap_err();
    assert!(err.to_string().contains("uncertainty_penalty"), "{err}");
}

#[test]
fn action_noise_perturbs_each_imagination_inside_the_box() {
    let _rng = rng_lock();
    let lq = Audited::new(LinearQuadratic::example(Kind::Double).with_bounds(-0.5, 0.5));
    let x0 = LinearQuadratic::EXAMPLE_START;
    let start = lq.inner.start(&x0);
    tch::manual_seed(5);
    let actions = (Tensor::rand([4, 3, 2], (Kind::Double, Device::Cpu)) - 0.5) * 0.9; // inside
    let plain = Objective::default();
    let noisy = Objective { action_noise: 0.3, ..plain };
    // Every perturbed copy stays in the box; S copies of each candidate are rolled out.
    let sampled = noisy.sampled_returns(&lq, &start, &actions, 4);
    assert_eq!(sampled.size(), [4, 3]);
    assert_eq!(lq.out_of_bounds(), 0);
    assert_eq!(lq.candidate_steps(), 4 * 3 * 4);
    // Even S = 1 is a perturbed draw: two calls differ, and neither is the plain return.
    let (a, b) =
        (noisy.expected_returns(&lq, &start, &actions, 1), noisy.expected_returns(&lq, &start, &actions, 1));
    assert!(!a.allclose(&b, 1e-12, 1e-12, false));
    assert!(!a.allclose(&plain.returns(&lq, &start, &actions), 1e-12, 1e-12, false));
    // As σ_n → 0 it is the plain return; `returns` never perturbs.
    let tiny = Objective { action_noise: 1e-9, ..plain };
    assert!(tiny.expected_returns(&lq, &start, &actions, 3).allclose(
        &plain.returns(&lq, &start, &actions),
        1e-6,
        1e-6,
        false
    ));
    assert!(noisy.returns(&lq, &start, &actions).equal(&plain.returns(&lq, &start, &actions)));
    let bad = Objective { action_noise: -0.1, ..plain };
    let err = PlannerConfig::GradMpc(GradMpcConfig { objective: bad, ..Default::default() })
        .init()
        .plan(&lq.inner, &start)
        .unwrap_err();
    assert!(err.to_string().contains("action_noise"), "{err}");
}

#[test]
fn grad_mpc_under_action_noise_still_reaches_the_lq_optimum() {
    let _rng = rng_lock();
    // For a quadratic return, E[R(a + ε)] = R(a) − σ² tr(M): the same maximiser, so the
    // smoothed ascent must find the plain optimum (away from the box, which the optimum is).
    let lq = LinearQuadratic::example(Kind::Float);
    let x0 = LinearQuadratic::EXAMPLE_START;
    let optimum = lq.optimum(&x0, 6, Objective::default());
    let config = GradMpcConfig {
        horizon: 6,
        candidates: 8,
        iterations: 400,
        learning_rate: 0.01,
        optimizer: ActionOptimizer::Adam,
        imagination_samples: 16,
        objective: Objective { action_noise: 0.05, ..Objective::default() },
        ..Default::default()
    };
    tch::manual_seed(0);
    let plan = PlannerConfig::GradMpc(config).init().plan(&lq, &lq.start(&x0)).unwrap();
    // Its own prediction is the noisy return, below R*: only the plan is checked.
    assert_achieves("smoothed Grad-MPC", &lq, &x0, &plan, &optimum, 1e-3, 3e-2);
}

#[test]
fn no_candidate_ever_leaves_tight_bounds_and_steps_are_counted() {
    let _rng = rng_lock();
    // The unconstrained optimum has |a*| ≈ 0.7, so [−0.1, 0.1] binds and pushes every planner
    // (gradient steps, samples with σ = 1, Adam) against the box.
    let x0 = LinearQuadratic::EXAMPLE_START;
    let optimum = LinearQuadratic::example(Kind::Float).optimum(&x0, 6, Objective::default());
    assert!(optimum.actions.iter().any(|a| a.abs() > 0.5), "the bounds must bind");
    let mut configs: Vec<PlannerConfig> = PlannerKind::MODEL_ONLY.iter().map(|&k| small(k, 6)).collect();
    configs.push(PlannerConfig::GradMpc(GradMpcConfig {
        horizon: 6,
        iterations: 3,
        candidates: 32,
        learning_rate: 5.0,
        optimizer: ActionOptimizer::Adam,
        ..Default::default()
    }));
    for config in configs {
        let lq = Audited::new(LinearQuadratic::example(Kind::Float).with_bounds(-0.1, 0.1));
        let mut planner = config.init();
        tch::manual_seed(0);
        for _ in 0..2 {
            let plan = planner.plan(&lq, &lq.inner.start(&x0)).unwrap();
            let name = config.kind();
            assert!(plan.action.iter().all(|a| a.abs() <= 0.1), "{name}: action {:?}", plan.action);
            assert!(flat(&plan.sequence).iter().all(|a| a.abs() <= 0.1 + 1e-7), "{name}: sequence");
            assert_eq!(plan.sequence.size(), [6, 2], "{name}");
            assert_eq!(lq.out_of_bounds(), 0, "{name}: a candidate left the bounds");
            assert_eq!(plan.model_steps, lq.candidate_steps(), "{name}: model_steps");
            lq.reset_counts();
        }
    }
}

#[test]
fn same_seed_gives_the_same_action_and_different_seeds_differ() {
    let _rng = rng_lock();
    let lq = LinearQuadratic::example(Kind::Float);
    let start = lq.start(&LinearQuadratic::EXAMPLE_START);
    for kind in PlannerKind::MODEL_ONLY {
        let config = small(kind, 5);
        let action = |seed: i64| {
            tch::manual_seed(seed);
            config.init().plan(&lq, &start).unwrap().action
        };
        assert_eq!(action(7), action(7), "{kind}");
        assert_ne!(action(7), action(8), "{kind}");
    }
}

#[test]
fn planners_follow_the_dynamics_device() {
    let _rng = rng_lock();
    // Runs where CUDA is visible (the GPU machines); on CPU-only hosts it checks nothing.
    if !tch::Cuda::is_available() {
        eprintln!("no CUDA device: skipped");
        return;
    }
    let device = Device::Cuda(0);
    let lq = LinearQuadratic::example(Kind::Float).with_device(device);
    let start = lq.start(&LinearQuadratic::EXAMPLE_START);
    for kind in PlannerKind::MODEL_ONLY {
        tch::manual_seed(0);
        let plan = small(kind, 6).init().plan(&lq, &start).unwrap();
        assert_eq!(plan.sequence.device(), device, "{kind}");
        assert!(plan.action.iter().all(|a| a.is_finite() && a.abs() <= 1.0), "{kind}");
    }
}

#[test]
fn a_value_objective_needs_a_model_with_a_value() {
    let _rng = rng_lock();
    let objective = Objective::new(0.99, true);
    let configs = model_planners_with(objective);
    let lq = LinearQuadratic::example(Kind::Float);
    let start = lq.start(&LinearQuadratic::EXAMPLE_START);
    for config in &configs {
        let err = config.init().plan(&lq, &start).unwrap_err();
        assert!(matches!(err, Error::NoValue), "{}: {err}", config.kind());
    }
    // With a value it plans, and the value enters the return: R ≤ the value-free return.
    let with_value = LinearQuadratic::example(Kind::Float).with_value(1.0);
    let mut planner = small(PlannerKind::Cem, 4);
    if let PlannerConfig::Cem(c) = &mut planner {
        c.objective = objective;
    }
    tch::manual_seed(0);
    let plan = planner.init().plan(&with_value, &start).unwrap();
    let sequence = flat(&plan.sequence);
    let x0 = LinearQuadratic::EXAMPLE_START;
    let want = with_value.simulate_return(&x0, &sequence, objective);
    assert!((plan.predicted_return - want).abs() < 1e-4, "{} vs {want}", plan.predicted_return);
}

#[test]
fn bad_bounds_and_settings_are_errors_not_panics() {
    let inverted = LinearQuadratic::example(Kind::Float).with_bounds(1.0, -1.0);
    let start = inverted.start(&LinearQuadratic::EXAMPLE_START);
    for kind in PlannerKind::MODEL_ONLY {
        let err = small(kind, 3).init().plan(&inverted, &start).unwrap_err();
        assert!(matches!(err, Error::Bounds { .. }), "{kind}: {err}");
    }
    let bad = PlannerConfig::GradMpc(GradMpcConfig { learning_rate: f64::NAN, ..Default::default() });
    assert!(bad.validate().unwrap_err().to_string().contains("learning_rate"));
    let bad = PlannerConfig::Mppi(MppiConfig { temperature: 0.0, ..Default::default() });
    assert!(bad.validate().unwrap_err().to_string().contains("temperature"));
    for kind in PlannerKind::MODEL_ONLY {
        PlannerConfig::defaults(kind).validate().unwrap();
    }
}

#[test]
fn planner_names_round_trip() {
    for kind in PlannerKind::MODEL_ONLY {
        assert_eq!(kind.name().parse::<PlannerKind>().unwrap(), kind);
        assert_eq!(PlannerConfig::defaults(kind).kind(), kind);
    }
    let err = "pets".parse::<PlannerKind>().unwrap_err().to_string();
    assert!(err.contains("grad-mpc"), "{err}");
}

#[test]
fn shift_drops_the_executed_action_and_repeats_the_last() {
    let s = Tensor::from_slice(&[1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]).view([3, 2]);
    assert_eq!(flat(&shift_sequence(&s)), [3.0, 4.0, 5.0, 6.0, 5.0, 6.0]);
    let one = Tensor::from_slice(&[1.0f64, 2.0]).view([1, 2]);
    assert_eq!(flat(&shift_sequence(&one)), [1.0, 2.0]);
}

/// Re-measures the tolerances the convergence tests state: worst gap and first-action error
/// over seeds 0–9 per planner (`cargo test -p gradplan-plan seed_scan -- --ignored --nocapture`).
#[test]
#[ignore = "a measurement, ~40 s"]
fn seed_scan() {
    let _rng = rng_lock();
    let lq = LinearQuadratic::example(Kind::Float);
    let x0 = LinearQuadratic::EXAMPLE_START;
    let optimum = lq.optimum(&x0, 12, Objective::default());
    let adam = GradMpcConfig {
        candidates: 50,
        horizon: 8,
        iterations: 100,
        optimizer: ActionOptimizer::Adam,
        ..Default::default()
    };
    let configs = [
        PlannerConfig::Cem(CemConfig::default()),
        PlannerConfig::GradMpc(GradMpcConfig::default()),
        PlannerConfig::GradMpc(GradMpcConfig { grad_clip_per_step: Some(0.5), ..Default::default() }),
        PlannerConfig::GradMpc(adam),
        PlannerConfig::Mppi(MppiConfig::default()),
        PlannerConfig::GradCem(GradCemConfig::default()),
    ];
    for config in configs {
        let horizon = match &config {
            PlannerConfig::GradMpc(c) => c.horizon,
            _ => 12,
        };
        let optimum = if horizon == 12 {
            optimum.clone()
        } else {
            lq.optimum(&x0, horizon as usize, Objective::default())
        };
        let (mut worst_gap, mut worst_first) = (0.0f64, 0.0f64);
        let start = std::time::Instant::now();
        for seed in 0..10 {
            tch::manual_seed(seed);
            let plan = config.init().plan(&lq, &lq.start(&x0)).unwrap();
            let sequence = flat(&plan.sequence);
            let achieved = lq.simulate_return(&x0, &sequence, Objective::default());
            worst_gap = worst_gap.max((optimum.ret - achieved) / optimum.ret.abs());
            let first = plan.action.iter().zip(&optimum.actions).map(|(a, b)| (*a as f64 - b).abs());
            worst_first = worst_first.max(first.fold(0.0, f64::max));
        }
        let per_plan = start.elapsed() / 10;
        eprintln!(
            "{config:?}\n  worst gap {worst_gap:.1e}, first action {worst_first:.1e}, {per_plan:?} per plan"
        );
    }
}
