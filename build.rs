//! Gives the shared library a versioned soname, `liblivecore.so.<ABI version>`, so programs
//! linked against one ABI version never load a library of another.

/// Keep equal to `LIVECORE_ABI_VERSION` in src/ffi/types.rs (a test checks it).
const ABI_VERSION: u32 = 1;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let soname = format!("liblivecore.so.{ABI_VERSION}");
    if target_os == "linux" || target_os == "android" || target_os.ends_with("bsd") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    }
    println!("cargo:rustc-env=LIVECORE_SONAME={soname}");
}
