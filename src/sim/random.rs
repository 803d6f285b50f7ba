//! The run's randomness: one seeded generator, so that the seed alone decides a run.

/// splitmix64: small, fast and the same everywhere.
pub(crate) struct Random(u64);

impl Random {
    pub(crate) fn new(seed: u64) -> Self {
        Random(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `bound` (0 when `bound` is 0).
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next() % bound
        }
    }

    /// True with probability `ratio`; draws nothing when `ratio` is 0, so that a run without
    /// some behaviour draws the same numbers as before it existed.
    pub(crate) fn chance(&mut self, ratio: f64) -> bool {
        ratio > 0.0 && ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < ratio
    }
}
