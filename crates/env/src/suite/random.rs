//! numpy's legacy `np.random.RandomState`, reimplemented so that native tasks draw the same
//! initial states as dm_control, which seeds every task with `np.random.RandomState(seed)`.
//!
//! Only what dm_control's tasks call is here: MT19937 seeded from one 32-bit integer (the
//! reference `init_genrand`, which is what numpy does for an integer seed), doubles built
//! from two 32-bit draws (53 bits), `uniform` as `low + (high - low) * u`, and `randn` as
//! numpy's legacy polar Box–Muller method, which caches its second value. Checked against
//! numpy in `tests/native_vs_dmc.rs`.

/// Words in MT19937's state.
const N: usize = 624;
/// MT19937's middle word offset.
const M: usize = 397;

/// A clone of `numpy.random.RandomState` for the draws dm_control tasks make.
#[derive(Clone)]
pub struct RandomState {
    key: [u32; N],
    pos: usize,
    /// The second value of the last polar Box–Muller pair, returned by the next `randn`.
    cached_gauss: Option<f64>,
}

impl std::fmt::Debug for RandomState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RandomState").field("pos", &self.pos).finish_non_exhaustive()
    }
}

impl RandomState {
    /// `np.random.RandomState(seed)` for an integer seed.
    pub fn new(seed: u32) -> Self {
        let mut key = [0u32; N];
        key[0] = seed;
        for i in 1..N {
            let prev = key[i - 1];
            key[i] = 1_812_433_253u32.wrapping_mul(prev ^ (prev >> 30)).wrapping_add(i as u32);
        }
        RandomState { key, pos: N, cached_gauss: None }
    }

    /// The MT19937 state words, numpy's `get_state()[1]` (checked against numpy in tests).
    pub fn key(&self) -> &[u32; N] {
        &self.key
    }

    /// Regenerates all `N` words (MT19937's "twist").
    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        for i in 0..N {
            let y = (self.key[i] & UPPER) | (self.key[(i + 1) % N] & LOWER);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            self.key[i] = self.key[(i + M) % N] ^ (y >> 1) ^ mag;
        }
        self.pos = 0;
    }

    /// The next tempered 32-bit output.
    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= N {
            self.twist();
        }
        let mut y = self.key[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// A double in [0, 1) from 27 + 26 bits of two draws (`random_sample`).
    pub fn next_f64(&mut self) -> f64 {
        let a = f64::from(self.next_u32() >> 5);
        let b = f64::from(self.next_u32() >> 6);
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// `uniform(low, high)`: one draw.
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.next_f64()
    }

    /// `uniform(low, high, n)`: `n` draws in order.
    pub fn uniform_n(&mut self, low: f64, high: f64, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.uniform(low, high)).collect()
    }

    /// `randn()`: one standard normal draw (legacy polar method).
    pub fn randn(&mut self) -> f64 {
        if let Some(cached) = self.cached_gauss.take() {
            return cached;
        }
        loop {
            let x1 = 2.0 * self.next_f64() - 1.0;
            let x2 = 2.0 * self.next_f64() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.cached_gauss = Some(f * x1);
                return f * x2;
            }
        }
    }

    /// `randn(n)`: `n` standard normal draws in order (none for `n = 0`).
    pub fn randn_n(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.randn()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first outputs of the reference MT19937 seeded with `init_genrand(5489)`, as
    /// published with Matsumoto and Nishimura's reference code (and `std::mt19937`'s
    /// default seed, whose 10000th output the C++ standard fixes as 4123659995).
    #[test]
    fn matches_reference_mt19937() {
        let mut rng = RandomState::new(5489);
        assert_eq!(rng.next_u32(), 3_499_211_612);
        assert_eq!(rng.next_u32(), 581_869_302);
        let mut rng = RandomState::new(5489);
        let mut last = 0;
        for _ in 0..10_000 {
            last = rng.next_u32();
        }
        assert_eq!(last, 4_123_659_995);
    }

    #[test]
    fn randn_caches_its_second_value() {
        let mut a = RandomState::new(3);
        let mut b = RandomState::new(3);
        let pair = [a.randn(), a.randn()];
        assert_eq!(b.randn_n(2), pair.to_vec());
        // A pair consumes an even number of u32 draws (4 per accepted attempt).
        assert_eq!(a.pos % 4, 0);
    }
}
