//! Build script of the five Lambda function crates (`build = "../bootstrap/build.rs"` in each):
//! a bootstrap built with the release profile — the Lambda profile, `panic = "abort"` (root
//! Cargo.toml) — is linked without unwind tables (`discard-unwind-tables.ld` here says why).
//! Only the crate's binary, the bootstrap, gets the flag; its tests keep their tables, and so
//! does every other profile: they unwind. Cargo tells a build script neither the profile's name
//! nor its `panic` setting (`CARGO_CFG_PANIC` says `unwind` either way), so the release profile
//! is told from the `bench` profile, also release-based, by its `opt-level = "z"`.

use std::path::Path;

pub fn main() {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../bootstrap/discard-unwind-tables.ld");
    println!("cargo::rerun-if-changed={}", script.display());
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release")
        && std::env::var("OPT_LEVEL").is_ok_and(|o| o == "z");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if release && linux {
        println!("cargo::rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
}
