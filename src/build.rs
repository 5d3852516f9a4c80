//! Build script of livecore. It does one thing, and only in a loom build (`--cfg
//! livecore_loom`): it turns the `LIVECORE_MUTANT` environment variable into
//! `--cfg livecore_mutant="<name>"` for this crate alone. Passing the mutant through
//! RUSTFLAGS would rebuild every dependency for each mutant; this way the mutant loop in
//! `.ci/test.sh` recompiles only livecore and the models. A normal build never sees a
//! mutant, whatever the environment holds.

use std::env;

fn main() {
    println!("cargo::rerun-if-changed=src/build.rs");
    println!("cargo::rerun-if-env-changed=LIVECORE_MUTANT");
    if env::var_os("CARGO_CFG_LIVECORE_LOOM").is_none() {
        return;
    }
    let Ok(mutant) = env::var("LIVECORE_MUTANT") else {
        return;
    };
    if mutant.is_empty() {
        return;
    }
    assert!(
        mutant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "LIVECORE_MUTANT must be a mutant name (letters, digits, underscores), got {mutant:?}"
    );
    println!("cargo::rustc-cfg=livecore_mutant=\"{mutant}\"");
}
