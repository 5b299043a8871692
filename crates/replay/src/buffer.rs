//! The step ring and how episodes are written into it.

use crate::{Error, Result};
use gradplan_env::{preprocess, ActionSpec, Obs, ObsSpec, Step};
use std::fmt;

/// Smallest growth of the arrays, in steps, so small buffers do not reallocate per push.
const MIN_RESERVE_STEPS: usize = 256;

/// Observation storage, one row of `obs_len` values per ring slot.
#[derive(Clone, PartialEq)]
pub(crate) enum ObsStore {
    /// `[len, H, W, 3]` u8.
    Pixels(Vec<u8>),
    /// `[len, D]` f32.
    State(Vec<f32>),
}

/// Where the episode being collected stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EpisodeState {
    /// Nothing begun yet.
    None,
    /// `push` appends to the current episode.
    Open,
    /// The last episode terminated or was truncated.
    Ended,
}

/// Experience replay: a ring of steps with Dreamer's time alignment (see the crate docs).
///
/// ```
/// use gradplan_env::{ActionSpec, Obs, ObsSpec, Step};
/// use gradplan_replay::Replay;
/// use rand::SeedableRng;
///
/// let mut replay = Replay::new(ObsSpec::State { dim: 2 }, ActionSpec::symmetric(1), 1000)?;
/// replay.begin_episode(&Obs::State(vec![0.0, 0.0]))?;
/// for t in 1..=10 {
///     let step = Step {
///         obs: Obs::State(vec![t as f32, 0.0]),
///         reward: 1.0,
///         terminated: false,
///         truncated: t == 10,
///     };
///     replay.push(&[0.5], &step)?;
/// }
/// assert_eq!(replay.len(), 11); // 10 decisions + the reset observation
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let batch = replay.sample(4, 5, &mut rng)?;
/// assert_eq!((batch.time, batch.batch), (5, 4));
/// # Ok::<(), gradplan_replay::Error>(())
/// ```
#[derive(Clone, PartialEq)]
pub struct Replay {
    pub(crate) obs_spec: ObsSpec,
    pub(crate) action_spec: ActionSpec,
    pub(crate) capacity: usize,
    pub(crate) bit_depth: Option<u32>,
    /// Values per observation: `H·W·3` or `D`.
    pub(crate) obs_len: usize,
    pub(crate) obs: ObsStore,
    /// `[len, A]`.
    pub(crate) actions: Vec<f32>,
    /// `[len]`.
    pub(crate) rewards: Vec<f32>,
    /// `[len]`; its length is the number of steps stored.
    pub(crate) is_first: Vec<bool>,
    /// `[len]`.
    pub(crate) is_terminal: Vec<bool>,
    /// Slot the next step goes to; equals `len` until the ring is full.
    pub(crate) next: usize,
    /// Steps stored with `is_first` set.
    pub(crate) firsts: usize,
    pub(crate) total_steps: u64,
    pub(crate) total_episodes: u64,
    pub(crate) episode: EpisodeState,
}

impl Replay {
    /// An empty replay for observations of `obs` and actions in `action`, holding at most
    /// `capacity` steps ([`crate::DEFAULT_CAPACITY`] in a normal run). Nothing is allocated
    /// until steps arrive.
    pub fn new(obs: ObsSpec, action: ActionSpec, capacity: usize) -> Result<Self> {
        if capacity == 0 {
            return Err(Error::Invalid("capacity must be at least one step".into()));
        }
        let obs_len = obs.shape().iter().product::<usize>();
        if obs_len == 0 {
            return Err(Error::Invalid(format!("observation shape {:?} has no elements", obs.shape())));
        }
        if action.dim() == 0 || action.high.len() != action.low.len() {
            return Err(Error::Invalid(format!(
                "action space needs matching, non-empty bounds (low has {}, high has {})",
                action.low.len(),
                action.high.len()
            )));
        }
        if let Some(i) =
            (0..action.dim()).find(|&i| action.low[i].partial_cmp(&action.high[i]).is_none_or(|o| o.is_gt()))
        {
            return Err(Error::Invalid(format!(
                "action bound {i} is empty or not a number: [{}, {}]",
                action.low[i], action.high[i]
            )));
        }
        let store = match obs {
            ObsSpec::Pixels { .. } => ObsStore::Pixels(Vec::new()),
            ObsSpec::State { .. } => ObsStore::State(Vec::new()),
        };
        Ok(Replay {
            obs_spec: obs,
            action_spec: action,
            capacity,
            bit_depth: None,
            obs_len,
            obs: store,
            actions: Vec::new(),
            rewards: Vec::new(),
            is_first: Vec::new(),
            is_terminal: Vec::new(),
            next: 0,
            firsts: 0,
            total_steps: 0,
            total_episodes: 0,
            episode: EpisodeState::None,
        })
    }

    /// Quantises frames to `bits` bits on insert (low bits zeroed, as PlaNet's preprocessing
    /// would anyway), so saved replays hold no noise the model never sees. Pixels only;
    /// `bits` in `1..=8`. Must be set before any step is stored.
    pub fn with_bit_depth(mut self, bits: u32) -> Result<Self> {
        if !matches!(self.obs_spec, ObsSpec::Pixels { .. }) {
            return Err(Error::Invalid("bit depth applies to pixel observations only".into()));
        }
        if !(1..=8).contains(&bits) {
            return Err(Error::Invalid(format!("bit depth must be in 1..=8, got {bits}")));
        }
        if !self.is_empty() {
            return Err(Error::Invalid("bit depth must be set before any step is stored".into()));
        }
        self.bit_depth = Some(bits);
        Ok(self)
    }

    /// Starts an episode with the reset observation: stored with a zero action, reward 0,
    /// `is_first` set. An episode still open is left as it is, i.e. cut off without being
    /// terminal.
    pub fn begin_episode(&mut self, obs: &Obs) -> Result<()> {
        self.check_obs(obs)?;
        let zeros = vec![0.0; self.action_spec.dim()];
        self.write(obs, &zeros, 0.0, true, false);
        self.total_episodes += 1;
        self.episode = EpisodeState::Open;
        Ok(())
    }

    /// Appends one decision: `action` is what the agent sent to the environment (clipped
    /// into the action box here, as the environment clips it) and `step` what came back.
    /// `step.terminated` sets `is_terminal`; either `terminated` or `truncated` ends the
    /// episode. Nothing is stored if an argument is rejected.
    ///
    /// # Shapes
    /// `action`: `[A]`.
    pub fn push(&mut self, action: &[f32], step: &Step) -> Result<()> {
        match self.episode {
            EpisodeState::None => return Err(Error::NoEpisode),
            EpisodeState::Ended => return Err(Error::EpisodeOver),
            EpisodeState::Open => {}
        }
        let action = self.action_spec.clip(action)?;
        self.check_obs(&step.obs)?;
        let reward = step.reward as f32;
        if !reward.is_finite() {
            return Err(Error::NonFinite { what: "reward", index: 0, value: step.reward });
        }
        self.write(&step.obs, &action, reward, false, step.terminated);
        if step.done() {
            self.episode = EpisodeState::Ended;
        }
        Ok(())
    }

    /// Steps stored (at most the capacity).
    pub fn len(&self) -> usize {
        self.is_first.len()
    }

    /// Whether no step is stored.
    pub fn is_empty(&self) -> bool {
        self.is_first.is_empty()
    }

    /// Steps the ring holds before it overwrites the oldest.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Episodes with at least one step stored, counting the oldest one even if its first
    /// steps have been overwritten.
    pub fn episodes(&self) -> usize {
        let oldest_is_partial = !self.is_empty() && !self.is_first[self.oldest()];
        self.firsts + usize::from(oldest_is_partial)
    }

    /// Steps ever stored, including those since overwritten.
    pub fn total_steps_seen(&self) -> u64 {
        self.total_steps
    }

    /// Episodes ever begun, including those since overwritten.
    pub fn total_episodes_seen(&self) -> u64 {
        self.total_episodes
    }

    /// The observation layout.
    pub fn obs_spec(&self) -> ObsSpec {
        self.obs_spec
    }

    /// The action box actions are clipped into.
    pub fn action_spec(&self) -> &ActionSpec {
        &self.action_spec
    }

    /// The bit depth frames are quantised to on insert, if any.
    pub fn bit_depth(&self) -> Option<u32> {
        self.bit_depth
    }

    /// Bytes one stored step takes: observation, action, reward and the two flags.
    pub fn step_bytes(&self) -> usize {
        let obs = match self.obs {
            ObsStore::Pixels(_) => self.obs_len,
            ObsStore::State(_) => 4 * self.obs_len,
        };
        obs + 4 * self.action_spec.dim() + 4 + 2
    }

    /// Bytes the arrays currently hold allocated (filled or reserved for growth).
    pub fn memory_bytes(&self) -> usize {
        let obs = match &self.obs {
            ObsStore::Pixels(v) => v.capacity(),
            ObsStore::State(v) => 4 * v.capacity(),
        };
        obs + 4 * (self.actions.capacity() + self.rewards.capacity())
            + self.is_first.capacity()
            + self.is_terminal.capacity()
    }

    /// Slot of the oldest stored step.
    pub(crate) fn oldest(&self) -> usize {
        if self.len() < self.capacity {
            0
        } else {
            self.next
        }
    }

    fn check_obs(&self, obs: &Obs) -> Result<()> {
        match (self.obs_spec, obs) {
            (ObsSpec::Pixels { height, width }, Obs::Pixels(frame)) => {
                if frame.height != height || frame.width != width || frame.data.len() != self.obs_len {
                    return Err(Error::ObsMismatch {
                        expected: format!("a {height}x{width} frame of {} bytes", self.obs_len),
                        got: format!(
                            "a {}x{} frame of {} bytes",
                            frame.height,
                            frame.width,
                            frame.data.len()
                        ),
                    });
                }
            }
            (ObsSpec::State { dim }, Obs::State(v)) => {
                if v.len() != dim {
                    return Err(Error::ObsMismatch {
                        expected: format!("a state vector of {dim}"),
                        got: format!("a state vector of {}", v.len()),
                    });
                }
                if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                    return Err(Error::NonFinite { what: "state observation", index: i, value: v[i].into() });
                }
            }
            (spec, got) => {
                return Err(Error::ObsMismatch {
                    expected: format!("{spec:?}"),
                    got: match got {
                        Obs::Pixels(f) => format!("a {}x{} frame", f.height, f.width),
                        Obs::State(v) => format!("a state vector of {}", v.len()),
                    },
                })
            }
        }
        Ok(())
    }

    /// Writes one validated step into slot `next`, overwriting the oldest once full.
    fn write(&mut self, obs: &Obs, action: &[f32], reward: f32, first: bool, terminal: bool) {
        let slot = self.next;
        let len = self.len();
        // Double, but never past the capacity: a full 1M-step pixel ring is 12 GB and must
        // not be rounded up to the next power of two.
        let reserve = (2 * len).max(MIN_RESERVE_STEPS).min(self.capacity);
        if slot < len && self.is_first[slot] {
            self.firsts -= 1;
        }
        match (&mut self.obs, obs) {
            (ObsStore::Pixels(store), Obs::Pixels(frame)) => {
                let row = put(store, slot, &frame.data, reserve);
                if let Some(bits) = self.bit_depth {
                    preprocess::quantise_u8(row, bits);
                }
            }
            (ObsStore::State(store), Obs::State(v)) => {
                put(store, slot, v, reserve);
            }
            _ => unreachable!("check_obs ran first"),
        }
        put(&mut self.actions, slot, action, reserve);
        put(&mut self.rewards, slot, &[reward], reserve);
        put(&mut self.is_first, slot, &[first], reserve);
        put(&mut self.is_terminal, slot, &[terminal], reserve);
        self.firsts += usize::from(first);
        self.next = (slot + 1) % self.capacity;
        self.total_steps += 1;
    }
}

/// Writes `row` into row `slot` of `v` (rows of `row.len()`), appending when `slot` is one
/// past the end; an append that needs room reserves `reserve_steps` rows in all.
fn put<'a, T: Copy>(v: &'a mut Vec<T>, slot: usize, row: &[T], reserve_steps: usize) -> &'a mut [T] {
    let n = row.len();
    let at = slot * n;
    if at == v.len() {
        if v.capacity() < at + n {
            v.reserve_exact(reserve_steps * n - at);
        }
        v.extend_from_slice(row);
    } else {
        v[at..at + n].copy_from_slice(row);
    }
    &mut v[at..at + n]
}

impl fmt::Debug for Replay {
    /// Sizes and counters only; the arrays can be gigabytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replay")
            .field("obs_spec", &self.obs_spec)
            .field("action_dim", &self.action_spec.dim())
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .field("next", &self.next)
            .field("episodes", &self.episodes())
            .field("total_steps", &self.total_steps)
            .field("total_episodes", &self.total_episodes)
            .field("bit_depth", &self.bit_depth)
            .finish()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use gradplan_env::Frame;

    /// Observation `[episode, index in episode, global step]`, so every stored step can be
    /// identified wherever it ends up.
    pub(crate) fn id_obs(ep: u32, idx: u32, global: u32) -> Obs {
        Obs::State(vec![ep as f32, idx as f32, global as f32])
    }

    /// The action that leads to step `global` (exactly representable, inside `[-1, 1]`).
    pub(crate) fn id_action(global: u32) -> f32 {
        (global % 1000) as f32 / 1000.0
    }

    /// Fills a `[ep, idx, global]` state replay with episodes of `lengths[e]` decisions; odd
    /// episodes terminate, even ones are truncated. Rewards are `global + 0.5`.
    pub(crate) fn fill(replay: &mut Replay, lengths: &[u32]) {
        let mut global = 0u32;
        for (e, &n) in lengths.iter().enumerate() {
            let e = e as u32;
            replay.begin_episode(&id_obs(e, 0, global)).unwrap();
            global += 1;
            for i in 1..=n {
                let step = Step {
                    obs: id_obs(e, i, global),
                    reward: global as f64 + 0.5,
                    terminated: i == n && !e.is_multiple_of(2),
                    truncated: i == n && e.is_multiple_of(2),
                };
                replay.push(&[id_action(global)], &step).unwrap();
                global += 1;
            }
        }
    }

    pub(crate) fn state_replay(capacity: usize) -> Replay {
        Replay::new(ObsSpec::State { dim: 3 }, ActionSpec::symmetric(1), capacity).unwrap()
    }

    fn frame(h: usize, w: usize, fill: u8) -> Obs {
        Obs::Pixels(Frame::new(h, w, vec![fill; h * w * 3]).unwrap())
    }

    fn step(obs: Obs, reward: f64, terminated: bool, truncated: bool) -> Step {
        Step { obs, reward, terminated, truncated }
    }

    #[test]
    fn first_step_alignment_and_terminal_vs_truncated() {
        let mut r = state_replay(100);
        fill(&mut r, &[2, 3]);
        // Episode 0: 3 steps, truncated; episode 1: 4 steps, terminated.
        assert_eq!(r.len(), 7);
        assert_eq!(r.is_first, [true, false, false, true, false, false, false]);
        assert_eq!(r.is_terminal, [false, false, false, false, false, false, true]);
        assert_eq!(r.actions[0], 0.0, "first step's action is zero");
        assert_eq!(r.rewards[0], 0.0, "first step's reward is zero");
        assert_eq!(r.actions[3], 0.0);
        assert_eq!(r.rewards[3], 0.0);
        assert_eq!(r.actions[1], id_action(1), "action_t led to obs_t");
        assert_eq!(r.rewards[2], 2.5, "reward_t was received on arriving at obs_t");
        assert_eq!(r.episodes(), 2);
        assert_eq!(r.total_episodes_seen(), 2);
        assert_eq!(r.total_steps_seen(), 7);
    }

    #[test]
    fn push_is_refused_outside_an_episode_and_rejects_bad_input_without_storing() {
        let mut r = state_replay(10);
        let s = step(id_obs(0, 1, 1), 1.0, false, false);
        assert!(matches!(r.push(&[0.0], &s), Err(Error::NoEpisode)));
        r.begin_episode(&id_obs(0, 0, 0)).unwrap();
        let before = r.clone();
        assert!(matches!(r.push(&[0.0, 0.0], &s), Err(Error::Action(_))));
        assert!(matches!(r.push(&[f32::NAN], &s), Err(Error::Action(_))));
        let bad_reward = step(id_obs(0, 1, 1), f64::NAN, false, false);
        assert!(matches!(r.push(&[0.0], &bad_reward), Err(Error::NonFinite { what: "reward", .. })));
        let huge_reward = step(id_obs(0, 1, 1), 1e300, false, false);
        assert!(matches!(r.push(&[0.0], &huge_reward), Err(Error::NonFinite { .. })));
        let short = step(Obs::State(vec![0.0]), 0.0, false, false);
        assert!(matches!(r.push(&[0.0], &short), Err(Error::ObsMismatch { .. })));
        let nan_obs = step(Obs::State(vec![0.0, f32::INFINITY, 0.0]), 0.0, false, false);
        assert!(matches!(r.push(&[0.0], &nan_obs), Err(Error::NonFinite { index: 1, .. })));
        let pixels = step(frame(2, 2, 0), 0.0, false, false);
        let err = r.push(&[0.0], &pixels).unwrap_err();
        assert!(err.to_string().contains("State { dim: 3 }"), "{err}");
        assert_eq!(r, before, "rejected pushes must not store anything");

        // Out-of-box actions are stored clipped, as the environment applied them.
        r.push(&[3.0], &s).unwrap();
        assert_eq!(r.actions[1], 1.0);
        r.push(&[0.0], &step(id_obs(0, 2, 2), 0.0, false, true)).unwrap();
        assert!(matches!(r.push(&[0.0], &s), Err(Error::EpisodeOver)));
        assert!(!r.is_terminal[2], "truncation is not termination");
    }

    #[test]
    fn settings_are_validated() {
        let pix = ObsSpec::Pixels { height: 4, width: 4 };
        assert!(Replay::new(pix, ActionSpec::symmetric(1), 0).is_err());
        assert!(Replay::new(pix, ActionSpec::symmetric(0), 10).is_err());
        assert!(Replay::new(ObsSpec::State { dim: 0 }, ActionSpec::symmetric(1), 10).is_err());
        let bad = ActionSpec { low: vec![1.0], high: vec![-1.0] };
        assert!(Replay::new(pix, bad, 10).is_err());
        let nan = ActionSpec { low: vec![f32::NAN], high: vec![1.0] };
        assert!(Replay::new(pix, nan, 10).is_err());
        let ok = Replay::new(pix, ActionSpec::symmetric(1), 10).unwrap();
        assert!(ok.clone().with_bit_depth(0).is_err());
        assert!(ok.clone().with_bit_depth(9).is_err());
        assert!(state_replay(10).with_bit_depth(5).is_err());
        let mut started = ok.clone();
        started.begin_episode(&frame(4, 4, 1)).unwrap();
        assert!(started.with_bit_depth(5).is_err());
        assert_eq!(ok.with_bit_depth(5).unwrap().bit_depth(), Some(5));
    }

    #[test]
    fn frames_are_checked_and_quantised_on_insert() {
        let spec = ObsSpec::Pixels { height: 2, width: 3 };
        let mut r = Replay::new(spec, ActionSpec::symmetric(2), 10).unwrap().with_bit_depth(5).unwrap();
        assert!(matches!(r.begin_episode(&frame(3, 2, 0)), Err(Error::ObsMismatch { .. })));
        let lying = Obs::Pixels(Frame { height: 2, width: 3, data: vec![0; 5] });
        assert!(matches!(r.begin_episode(&lying), Err(Error::ObsMismatch { .. })));
        assert!(matches!(r.begin_episode(&Obs::State(vec![0.0; 18])), Err(Error::ObsMismatch { .. })));
        r.begin_episode(&frame(2, 3, 0b1011_0111)).unwrap();
        let ObsStore::Pixels(data) = &r.obs else { panic!("pixel store") };
        assert!(data.iter().all(|&u| u == 0b1011_0000), "low 3 bits zeroed");
        assert_eq!(r.step_bytes(), 18 + 8 + 4 + 2);
    }

    #[test]
    fn ring_overwrites_oldest_and_keeps_counts() {
        let mut r = state_replay(10);
        // 3 + 4 + 5 + 6 = 18 steps into 10 slots.
        fill(&mut r, &[2, 3, 4, 5]);
        assert_eq!(r.len(), 10);
        assert_eq!(r.total_steps_seen(), 18);
        assert_eq!(r.next, 8);
        let ObsStore::State(obs) = &r.obs else { panic!("state store") };
        let globals: Vec<f32> = (0..10).map(|k| obs[((r.oldest() + k) % 10) * 3 + 2]).collect();
        assert_eq!(globals, (8..18).map(|g| g as f32).collect::<Vec<_>>(), "the newest 10 steps remain");
        // Steps 8..18: the tail of episode 2 (starts at 7, overwritten) and episode 3 (starts at 12).
        assert_eq!(r.firsts, 1);
        assert_eq!(r.episodes(), 2);
        assert_eq!(r.total_episodes_seen(), 4);
    }

    #[test]
    fn memory_grows_with_data_and_stops_at_capacity() {
        let spec = ObsSpec::Pixels { height: 64, width: 64 };
        let mut r = Replay::new(spec, ActionSpec::symmetric(6), crate::DEFAULT_CAPACITY).unwrap();
        assert_eq!(r.step_bytes(), 12_318, "64x64x3 + 6 f32 + f32 + 2 flags");
        assert_eq!(r.memory_bytes(), 0, "nothing allocated up front");
        r.begin_episode(&frame(64, 64, 7)).unwrap();
        for _ in 0..9 {
            r.push(&[0.0; 6], &step(frame(64, 64, 7), 0.0, false, false)).unwrap();
        }
        assert_eq!(r.memory_bytes(), MIN_RESERVE_STEPS * 12_318, "one growth step, not 12 GB");

        let mut small = Replay::new(spec, ActionSpec::symmetric(6), 300).unwrap();
        small.begin_episode(&frame(64, 64, 7)).unwrap();
        for _ in 0..400 {
            small.push(&[0.0; 6], &step(frame(64, 64, 7), 0.0, false, false)).unwrap();
        }
        assert_eq!(small.len(), 300);
        assert_eq!(small.memory_bytes(), 300 * 12_318, "growth is capped at the capacity");
    }

    /// Fills 100k 64x64 pixel steps and reports the resident memory; run with
    /// `cargo test -p gradplan-replay --release -- --ignored --nocapture`.
    #[test]
    #[ignore = "allocates about 1.2 GB"]
    fn hundred_thousand_pixel_steps_fit() {
        let rss = || -> usize {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("VmRSS: 0 kB");
            line.split_whitespace().nth(1).and_then(|kb| kb.parse::<usize>().ok()).unwrap_or(0) * 1024
        };
        let before = rss();
        let spec = ObsSpec::Pixels { height: 64, width: 64 };
        let mut r = Replay::new(spec, ActionSpec::symmetric(6), crate::DEFAULT_CAPACITY).unwrap();
        let n = 100_000;
        let mut k = 0u8;
        while r.len() < n {
            r.begin_episode(&frame(64, 64, k)).unwrap();
            for i in 1..=1000 {
                if r.len() == n {
                    break;
                }
                k = k.wrapping_add(1);
                r.push(&[0.1; 6], &step(frame(64, 64, k), 1.0, false, i == 1000)).unwrap();
            }
        }
        let grown = rss() - before;
        println!(
            "{n} steps: {} B/step, {} bytes filled, {} bytes reserved, resident growth {} bytes ({:.0} B/step)",
            r.step_bytes(),
            n * r.step_bytes(),
            r.memory_bytes(),
            grown,
            grown as f64 / n as f64
        );
        assert!(grown < n * r.step_bytes() * 11 / 10);
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
        let start = std::time::Instant::now();
        for _ in 0..10 {
            r.sample(crate::DEFAULT_BATCH, crate::DEFAULT_CHUNK, &mut rng).unwrap();
        }
        println!("sample(50, 50): {:.1} ms", start.elapsed().as_secs_f64() * 100.0);
    }
}
