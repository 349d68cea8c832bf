//! Deterministic pseudo-random numbers for load generators and generated histories: the same
//! seed gives the same run, and no dependency is needed for it.

/// A xorshift64 generator starting from `seed` (which must not be 0).
pub fn xorshift64(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}
