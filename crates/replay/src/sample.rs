//! Uniform sampling of sequence chunks (PlaNet Algorithm 1: draw {(o_t, a_t, r_t)} ~ 𝒟).

use crate::buffer::{ObsStore, Replay};
use crate::{Error, Result};
use rand::Rng;

/// Observations of a [`Batch`].
#[derive(Debug, Clone, PartialEq)]
pub enum BatchObs {
    /// `[T, B, H, W, 3]` u8, raw as stored.
    Pixels { height: usize, width: usize, data: Vec<u8> },
    /// `[T, B, D]` f32.
    State { dim: usize, data: Vec<f32> },
}

/// B chunks of T consecutive steps, time-major: element `[t, b]` is at `t * batch + b`.
///
/// # Shapes
/// * `obs`: `[T, B, H, W, 3]` u8 or `[T, B, D]` f32
/// * `actions`: `[T, B, A]`, `actions[t]` led to `obs[t]` (zero where `is_first`)
/// * `rewards`: `[T, B]`, received on arriving at `obs[t]` (zero where `is_first`)
/// * `is_first`, `is_terminal`: `[T, B]`
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// T, steps per chunk.
    pub time: usize,
    /// B, chunks.
    pub batch: usize,
    /// A.
    pub action_dim: usize,
    pub obs: BatchObs,
    pub actions: Vec<f32>,
    pub rewards: Vec<f32>,
    /// An episode starts here: the model must reset its state before this step.
    pub is_first: Vec<bool>,
    /// This step is terminal (discount 0).
    pub is_terminal: Vec<bool>,
}

impl Batch {
    /// The observation tensor's shape, `[T, B, H, W, 3]` or `[T, B, D]`.
    pub fn obs_shape(&self) -> Vec<usize> {
        match self.obs {
            BatchObs::Pixels { height, width, .. } => vec![self.time, self.batch, height, width, 3],
            BatchObs::State { dim, .. } => vec![self.time, self.batch, dim],
        }
    }
}

impl Replay {
    /// Number of distinct chunks of `chunk` steps that [`Replay::sample`] can return:
    /// `len − chunk + 1`, or 0 when fewer than `chunk` steps are stored.
    pub fn valid_chunks(&self, chunk: usize) -> usize {
        (self.len() + 1).saturating_sub(chunk.max(1))
    }

    /// Draws `batch` chunks of `chunk` consecutive steps, each start uniform over the
    /// [`Replay::valid_chunks`] starts (see the crate docs for what is valid). The result
    /// depends only on the stored data and `rng`.
    ///
    /// # Shapes
    /// Returns a time-major [`Batch`] with T = `chunk`, B = `batch`.
    pub fn sample<R: Rng + ?Sized>(&self, batch: usize, chunk: usize, rng: &mut R) -> Result<Batch> {
        if batch == 0 || chunk == 0 {
            return Err(Error::Invalid(format!(
                "batch and chunk must be at least 1, got batch {batch}, chunk {chunk}"
            )));
        }
        let starts = self.valid_chunks(chunk);
        if starts == 0 {
            return Err(Error::NotEnoughData { chunk, stored: self.len() });
        }
        let oldest = self.oldest();
        // Logical start k (0 = oldest stored step) maps to slot (oldest + k) mod capacity; a
        // chunk may wrap past the last slot to slot 0, which is still consecutive in time.
        let first_slots: Vec<usize> =
            (0..batch).map(|_| (oldest + rng.random_range(0..starts)) % self.capacity).collect();
        let slot = |t: usize, b: usize| (first_slots[b] + t) % self.capacity;

        let a = self.action_spec.dim();
        let n = chunk * batch;
        let mut actions = Vec::with_capacity(n * a);
        let mut rewards = Vec::with_capacity(n);
        let mut is_first = Vec::with_capacity(n);
        let mut is_terminal = Vec::with_capacity(n);
        for t in 0..chunk {
            for b in 0..batch {
                let s = slot(t, b);
                actions.extend_from_slice(&self.actions[s * a..(s + 1) * a]);
                rewards.push(self.rewards[s]);
                is_first.push(self.is_first[s]);
                is_terminal.push(self.is_terminal[s]);
            }
        }
        let obs = match &self.obs {
            ObsStore::Pixels(store) => {
                let gathered = gather(store, self.obs_len, chunk, batch, slot);
                match self.obs_spec {
                    gradplan_env::ObsSpec::Pixels { height, width } => {
                        BatchObs::Pixels { height, width, data: gathered }
                    }
                    gradplan_env::ObsSpec::State { .. } => unreachable!("store matches spec"),
                }
            }
            ObsStore::State(store) => {
                BatchObs::State { dim: self.obs_len, data: gather(store, self.obs_len, chunk, batch, slot) }
            }
        };
        Ok(Batch { time: chunk, batch, action_dim: a, obs, actions, rewards, is_first, is_terminal })
    }
}

/// Copies rows of `row` values for every `[t, b]` into a time-major `[T, B, row]` array.
fn gather<T: Copy>(
    store: &[T],
    row: usize,
    time: usize,
    batch: usize,
    slot: impl Fn(usize, usize) -> usize,
) -> Vec<T> {
    let mut out = Vec::with_capacity(time * batch * row);
    for t in 0..time {
        for b in 0..batch {
            let s = slot(t, b);
            out.extend_from_slice(&store[s * row..(s + 1) * row]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::tests::{fill, id_action, state_replay};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::HashMap;

    /// `(episode, index in episode, global step)` of every `[t, b]` of a batch from a replay
    /// filled by `fill`.
    fn ids(batch: &Batch) -> Vec<(u32, u32, u32)> {
        let BatchObs::State { dim: 3, data } = &batch.obs else { panic!("[ep, idx, global] states") };
        data.chunks_exact(3).map(|v| (v[0] as u32, v[1] as u32, v[2] as u32)).collect()
    }

    /// Checks that every `[t, b]` of `batch` is exactly the step `fill` stored, that each chunk
    /// is consecutive in time, and that `is_first` is set exactly where a new episode starts.
    /// Returns how many episode starts were seen inside chunks (t > 0).
    fn check_chunks(batch: &Batch, lengths: &[u32]) -> usize {
        let (tt, bb) = (batch.time, batch.batch);
        let ids = ids(batch);
        let mut crossings = 0;
        for b in 0..bb {
            for t in 0..tt {
                let k = t * bb + b;
                let (ep, idx, global) = ids[k];
                let last = lengths[ep as usize];
                assert_eq!(batch.is_first[k], idx == 0, "is_first flags episode starts, [{t}, {b}]");
                assert_eq!(
                    batch.is_terminal[k],
                    idx == last && !ep.is_multiple_of(2),
                    "terminal only when terminated"
                );
                let (action, reward) =
                    if idx == 0 { (0.0, 0.0) } else { (id_action(global), global as f32 + 0.5) };
                assert_eq!(batch.actions[k], action);
                assert_eq!(batch.rewards[k], reward);
                if t == 0 {
                    continue;
                }
                let (pep, pidx, pglobal) = ids[(t - 1) * bb + b];
                assert_eq!(global, pglobal + 1, "chunk steps are consecutive in time");
                if batch.is_first[k] {
                    assert_eq!(
                        (ep, pidx),
                        (pep + 1, lengths[pep as usize]),
                        "crossing from an episode's end"
                    );
                    crossings += 1;
                } else {
                    assert_eq!((ep, idx), (pep, pidx + 1), "no episode change without is_first");
                }
            }
        }
        crossings
    }

    fn lengths(n: usize) -> Vec<u32> {
        (0..n as u32).map(|e| 3 + (e * 7) % 11).collect()
    }

    #[test]
    fn every_episode_start_inside_a_chunk_is_flagged() {
        let lengths = lengths(40);
        let mut r = state_replay(10_000);
        fill(&mut r, &lengths);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut crossings = 0;
        for _ in 0..50 {
            let batch = r.sample(16, 12, &mut rng).unwrap();
            assert_eq!(batch.obs_shape(), vec![12, 16, 3]);
            assert_eq!(batch.actions.len(), 12 * 16);
            crossings += check_chunks(&batch, &lengths);
        }
        assert!(crossings > 100, "chunks must cross episode boundaries; saw {crossings}");
    }

    #[test]
    fn wrapped_ring_never_samples_across_the_seam_or_stale_data() {
        let lengths = lengths(30);
        let total: u32 = lengths.iter().map(|n| n + 1).sum();
        let capacity = 50;
        let mut r = state_replay(capacity);
        fill(&mut r, &lengths);
        assert_eq!(r.len(), capacity);
        assert_ne!(r.next, 0, "the test needs chunks that wrap the physical end of the ring");
        let oldest_kept = total - capacity as u32;

        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut seen = std::collections::HashSet::new();
        let mut wrapped_slots = 0;
        for _ in 0..200 {
            let batch = r.sample(8, 8, &mut rng).unwrap();
            check_chunks(&batch, &lengths);
            for (k, &(_, _, global)) in ids(&batch).iter().enumerate() {
                assert!(global >= oldest_kept, "step {global} was overwritten");
                let start_slot = (r.oldest() + (global - oldest_kept) as usize) % capacity;
                if k < 8 && start_slot + 7 >= capacity {
                    wrapped_slots += 1;
                }
                seen.insert(global);
            }
        }
        assert_eq!(seen, (oldest_kept..total).collect(), "all kept steps and nothing else");
        assert!(wrapped_slots > 0, "chunks wrapping the last slot to slot 0 are valid");
    }

    #[test]
    fn starts_are_uniform_over_valid_chunks() {
        let lengths = lengths(12);
        let capacity = 40;
        let chunk = 5;
        let mut r = state_replay(capacity);
        fill(&mut r, &lengths);
        let total: u32 = lengths.iter().map(|n| n + 1).sum();
        let oldest_kept = total - capacity as u32;
        let valid = r.valid_chunks(chunk);
        assert_eq!(valid, capacity - chunk + 1);

        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut counts: HashMap<u32, usize> = HashMap::new();
        let rounds = 500;
        for _ in 0..rounds {
            let batch = r.sample(valid, chunk, &mut rng).unwrap();
            for &(_, _, global) in &ids(&batch)[..valid] {
                *counts.entry(global).or_default() += 1;
            }
        }
        let expected: std::collections::HashSet<u32> = (oldest_kept..oldest_kept + valid as u32).collect();
        assert_eq!(counts.keys().copied().collect::<std::collections::HashSet<_>>(), expected);
        // Binomial(valid * 500, 1/valid): mean 500, sd ≈ 22; ±25% is over 5 sd.
        for (&start, &c) in &counts {
            assert!((375..=625).contains(&c), "start {start} drawn {c} times, expected about {rounds}");
        }
    }

    #[test]
    fn too_little_data_or_empty_requests_are_errors() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut r = state_replay(100);
        assert!(matches!(r.sample(1, 1, &mut rng), Err(Error::NotEnoughData { chunk: 1, stored: 0 })));
        fill(&mut r, &[4]);
        let err = r.sample(2, 6, &mut rng).unwrap_err();
        assert!(matches!(err, Error::NotEnoughData { chunk: 6, stored: 5 }));
        assert_eq!(err.to_string(), "cannot sample a chunk of 6 steps: the replay holds only 5");
        assert!(matches!(r.sample(0, 2, &mut rng), Err(Error::Invalid(_))));
        assert!(matches!(r.sample(2, 0, &mut rng), Err(Error::Invalid(_))));
        assert_eq!(r.valid_chunks(5), 1);
        let batch = r.sample(3, 5, &mut rng).unwrap();
        assert!(
            batch.is_first.chunks(3).next().unwrap().iter().all(|&f| f),
            "the only chunk starts the episode"
        );
    }

    #[test]
    fn sampling_depends_only_on_the_rng() {
        let mut r = state_replay(200);
        fill(&mut r, &lengths(10));
        let a = r.sample(7, 9, &mut ChaCha8Rng::seed_from_u64(5)).unwrap();
        let b = r.clone().sample(7, 9, &mut ChaCha8Rng::seed_from_u64(5)).unwrap();
        let c = r.sample(7, 9, &mut ChaCha8Rng::seed_from_u64(6)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn pixel_batches_are_time_major() {
        use gradplan_env::{ActionSpec, Frame, Obs, ObsSpec, Step};
        // A 2x2 frame whose first byte is the global step.
        let frame = |g: u8| Obs::Pixels(Frame::new(2, 2, vec![g; 12]).unwrap());
        let spec = ObsSpec::Pixels { height: 2, width: 2 };
        let mut r = Replay::new(spec, ActionSpec::symmetric(2), 100).unwrap();
        r.begin_episode(&frame(0)).unwrap();
        for g in 1..30u8 {
            let step = Step { obs: frame(g), reward: g as f64, terminated: false, truncated: false };
            r.push(&[g as f32 / 100.0, -(g as f32) / 100.0], &step).unwrap();
        }
        let batch = r.sample(4, 6, &mut ChaCha8Rng::seed_from_u64(7)).unwrap();
        assert_eq!(batch.obs_shape(), vec![6, 4, 2, 2, 3]);
        let BatchObs::Pixels { data, .. } = &batch.obs else { panic!("pixels") };
        assert_eq!(data.len(), 6 * 4 * 12);
        for t in 0..6 {
            for b in 0..4 {
                let k = t * 4 + b;
                let g = data[k * 12];
                assert!(data[k * 12..(k + 1) * 12].iter().all(|&u| u == g));
                assert_eq!(g, data[b * 12] + t as u8, "[t, b] is step start_b + t");
                assert_eq!(batch.rewards[k], g as f32);
                let expected = if g == 0 { [0.0, 0.0] } else { [g as f32 / 100.0, -(g as f32) / 100.0] };
                assert_eq!(batch.actions[k * 2..k * 2 + 2], expected);
            }
        }
    }
}
