//! The api's build script: the bootstraps' (`../bootstrap/build.rs`), and `docs/openapi.json`
//! as the API serves it (`openapi::served`): without its indentation — whitespace between tokens
//! is dropped, nothing else: the keys keep their order and the strings their bytes — and
//! deflated, 40 KB instead of the file's 419 KB in the bootstrap (docs/benchmarks.md).

use std::path::{Path, PathBuf};

#[path = "../bootstrap/build.rs"]
mod bootstrap;

fn main() {
    bootstrap::main();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    println!("cargo::rerun-if-changed={}", source.display());
    let pretty = std::fs::read_to_string(&source).expect("docs/openapi.json");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let deflated = miniz_oxide::deflate::compress_to_vec(compact(&pretty).as_bytes(), 10);
    std::fs::write(out.join("openapi.json.deflate"), deflated).expect("write openapi.json.deflate");
}

/// `json` without the whitespace outside its strings.
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !c.is_ascii_whitespace() {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}
