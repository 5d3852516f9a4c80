//! Build script of livecore: it gives the shared library a versioned soname,
//! `liblivecore.so.<C ABI version>`, so a program linked against one ABI version never
//! loads a library of another. (Loom mutants are selected at run time, by
//! `LIVECORE_MUTANT` in a `--cfg livecore_loom` build: see `sync::mutant_selected`.)

use std::env;

/// Keep equal to `LIVECORE_ABI_VERSION` in src/ffi/types.rs (tests/ffi_header.rs checks it).
const ABI_VERSION: u32 = 2;

fn main() {
    println!("cargo::rerun-if-changed=src/build.rs");
    let soname = format!("liblivecore.so.{ABI_VERSION}");
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" || target_os == "android" || target_os.ends_with("bsd") {
        println!("cargo::rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    }
    println!("cargo::rustc-env=LIVECORE_SONAME={soname}");
}
