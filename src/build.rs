//! Build script of livecore. It does two things:
//!
//! - It gives the shared library a versioned soname, `liblivecore.so.<C ABI version>`, so a
//!   program linked against one ABI version never loads a library of another.
//! - Only in a loom build (`--cfg livecore_loom`): it turns the `LIVECORE_MUTANT`
//!   environment variable into `--cfg livecore_mutant="<name>"` for this crate alone.
//!   Passing the mutant through RUSTFLAGS would rebuild every dependency for each mutant;
//!   this way the mutant loop in `.ci/test.sh` recompiles only livecore and the models. A
//!   normal build never sees a mutant, whatever the environment holds.

use std::env;

/// Keep equal to `LIVECORE_ABI_VERSION` in src/ffi/types.rs (tests/ffi_header.rs checks it).
const ABI_VERSION: u32 = 1;

fn main() {
    println!("cargo::rerun-if-changed=src/build.rs");
    println!("cargo::rerun-if-env-changed=LIVECORE_MUTANT");
    let soname = format!("liblivecore.so.{ABI_VERSION}");
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" || target_os == "android" || target_os.ends_with("bsd") {
        println!("cargo::rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    }
    println!("cargo::rustc-env=LIVECORE_SONAME={soname}");
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
