//! Which keys a benchmark touches: a pseudo-random permutation of `[0, n)` (to shuffle a
//! column against the table's key, and to spread hot keys), a Zipf sampler, and `KeyChooser`,
//! which draws keys in one of the three `--distribution`s.
//!
//! Everything is seeded, so two runs with the same flags touch the same keys in the same order.
//! Nothing here holds per-key state: a permutation is a keyed Feistel network (cycle-walking
//! keeps it inside `[0, n)`), and the Zipf sampler is Gray et al.'s closed form ("Quickly
//! generating billion-record synthetic databases", SIGMOD 1994; the generator YCSB uses), so
//! `--rows 10000000` costs no memory for keys.

use clap::ValueEnum;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How the workload picks the keys it looks up, updates and deletes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Distribution {
    /// In ascending order from a (seeded) random start, wrapping around: neighbours share pages
    /// (the cache-friendliest).
    Sequential,
    /// Uniformly at random.
    Random,
    /// Zipf (theta 0.99, as YCSB): a few hot keys take most accesses; the hot keys are spread
    /// over the key space, not bunched at its start.
    Zipf,
}

impl Distribution {
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Sequential => "sequential",
            Distribution::Random => "random",
            Distribution::Zipf => "zipf",
        }
    }
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A bijection of `[0, n)` onto itself that looks random: a 4-round balanced Feistel network
/// over the smallest even-bit power of two holding `n`, applied again while the result falls
/// outside `[0, n)` (cycle-walking; the domain is under 4n, so under 4 rounds on average).
#[derive(Clone, Debug)]
pub struct Permutation {
    n: u64,
    half_bits: u32,
    round_keys: [u64; 4],
}

impl Permutation {
    pub fn new(n: u64, seed: u64) -> Permutation {
        let bits = (64 - n.saturating_sub(1).leading_zeros()).max(2);
        let half_bits = bits.div_ceil(2);
        let round_keys = [mix(seed), mix(seed ^ 1), mix(seed ^ 2), mix(seed ^ 3)];
        Permutation {
            n,
            half_bits,
            round_keys,
        }
    }

    fn feistel(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut left, mut right) = (x >> self.half_bits, x & mask);
        for key in self.round_keys {
            let next = left ^ (mix(right ^ key) & mask);
            left = right;
            right = next;
        }
        (left << self.half_bits) | right
    }

    /// The image of `x`, which must be below `n`.
    pub fn apply(&self, x: u64) -> u64 {
        debug_assert!(x < self.n.max(1));
        let mut y = self.feistel(x);
        while y >= self.n {
            y = self.feistel(y);
        }
        y
    }
}

/// Zipf-distributed ranks in `[0, n)`: rank 0 is the most frequent, rank `r` is drawn with
/// probability proportional to `1 / (r + 1)^theta`.
#[derive(Clone, Debug)]
pub struct Zipf {
    n: u64,
    theta: f64,
    alpha: f64,
    zeta_n: f64,
    eta: f64,
}

impl Zipf {
    /// `theta` in (0, 1); building it sums `n` terms once (about 10 ms per million).
    pub fn new(n: u64, theta: f64) -> Zipf {
        let n = n.max(1);
        let zeta = |count: u64| {
            (1..=count)
                .map(|i| 1.0 / (i as f64).powf(theta))
                .sum::<f64>()
        };
        let zeta_n = zeta(n);
        let zeta_2 = zeta(2.min(n));
        let eta = if n <= 2 {
            0.0
        } else {
            (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta_2 / zeta_n)
        };
        Zipf {
            n,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zeta_n,
            eta,
        }
    }

    pub fn sample(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.gen();
        let uz = u * self.zeta_n;
        if uz < 1.0 || self.n == 1 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) || self.n == 2 {
            return 1;
        }
        let rank = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        rank.min(self.n - 1)
    }
}

/// Draws keys in `[0, n)` following a `Distribution`.
pub struct KeyChooser {
    n: u64,
    rng: StdRng,
    kind: Chooser,
}

enum Chooser {
    Sequential { next: u64 },
    Random,
    Zipf { zipf: Zipf, spread: Permutation },
}

impl KeyChooser {
    pub fn new(distribution: Distribution, n: u64, seed: u64) -> KeyChooser {
        let n = n.max(1);
        let mut rng = StdRng::seed_from_u64(seed);
        let kind = match distribution {
            // Not from 0: at the edges of the key space even a useless index looks selective.
            Distribution::Sequential => Chooser::Sequential {
                next: rng.gen_range(0..n),
            },
            Distribution::Random => Chooser::Random,
            Distribution::Zipf => Chooser::Zipf {
                zipf: Zipf::new(n, 0.99),
                spread: Permutation::new(n, seed ^ 0x5a5a),
            },
        };
        KeyChooser { n, rng, kind }
    }

    pub fn next_key(&mut self) -> u64 {
        match &mut self.kind {
            Chooser::Sequential { next } => {
                let k = *next;
                *next = (k + 1) % self.n;
                k
            }
            Chooser::Random => self.rng.gen_range(0..self.n),
            Chooser::Zipf { zipf, spread } => spread.apply(zipf.sample(&mut self.rng)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_bijection() {
        for n in [1u64, 2, 3, 7, 8, 100, 1000, 4097] {
            let p = Permutation::new(n, 42);
            let mut seen = vec![false; n as usize];
            for x in 0..n {
                let y = p.apply(x);
                assert!(y < n, "n={n}: {x} -> {y}");
                assert!(!seen[y as usize], "n={n}: {y} twice");
                seen[y as usize] = true;
            }
        }
    }

    #[test]
    fn permutation_shuffles() {
        let n = 10_000;
        let p = Permutation::new(n, 7);
        let rising = (1..n).filter(|&x| p.apply(x) > p.apply(x - 1)).count();
        // Ordered would be n - 1; a random order rises about half the time.
        assert!((4_000..6_000).contains(&rising), "{rising}");
        assert_ne!(
            Permutation::new(n, 1).apply(5),
            Permutation::new(n, 2).apply(5)
        );
    }

    #[test]
    fn zipf_is_skewed_and_in_range() {
        let n = 100_000;
        let z = Zipf::new(n, 0.99);
        let mut rng = StdRng::seed_from_u64(3);
        let mut counts = [0u32; 10];
        let draws = 100_000;
        for _ in 0..draws {
            let r = z.sample(&mut rng);
            assert!(r < n);
            if r < 10 {
                counts[r as usize] += 1;
            }
        }
        // P(rank 0) = 1 / zeta(n) is about 8% here; rank 1 about half of that.
        assert!(counts[0] > draws / 20, "{counts:?}");
        assert!(counts[0] > counts[1] && counts[1] > counts[9], "{counts:?}");
        assert_eq!(Zipf::new(1, 0.99).sample(&mut rng), 0);
    }

    #[test]
    fn choosers_stay_in_range() {
        for d in [
            Distribution::Sequential,
            Distribution::Random,
            Distribution::Zipf,
        ] {
            let mut c = KeyChooser::new(d, 50, 9);
            for _ in 0..1000 {
                assert!(c.next_key() < 50);
            }
        }
        let mut seq = KeyChooser::new(Distribution::Sequential, 3, 0);
        let keys: Vec<u64> = (0..6).map(|_| seq.next_key()).collect();
        assert_eq!((keys[0] + 1) % 3, keys[1]);
        assert_eq!((keys[1] + 1) % 3, keys[2]);
        assert_eq!(keys[..3], keys[3..]);
    }
}
