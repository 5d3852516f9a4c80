//! What a soak run takes from the environment: `LIVECORE_SOAK_SEED` (run that one seed),
//! `LIVECORE_SOAK_STEPS` (steps per seed), `LIVECORE_SOAK_SEEDS` (how many seeds a
//! default run takes, where a soak runs several).
#![allow(dead_code)]

/// Steps per run: `LIVECORE_SOAK_STEPS`, else `default`.
pub fn soak_steps(default: usize) -> usize {
    env_number("LIVECORE_SOAK_STEPS").unwrap_or(default)
}

/// The one seed to run, from `LIVECORE_SOAK_SEED`.
pub fn soak_seed() -> Option<u64> {
    env_number("LIVECORE_SOAK_SEED")
}

/// Seeds a default run takes: `LIVECORE_SOAK_SEEDS`, else `default`.
pub fn soak_seeds(default: u64) -> u64 {
    env_number("LIVECORE_SOAK_SEEDS").unwrap_or(default)
}

fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
}
