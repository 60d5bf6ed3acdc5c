//! Embeds the default rule files (rules/*.yml) into the binary for `vigie demo`.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let dir = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("rules");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")));
    files.sort();
    let mut out = String::new();
    writeln!(out, "/// The default rule files and their tests, by file name.").unwrap();
    writeln!(out, "pub(crate) const FILES: [(&str, &str); {}] = [", files.len()).unwrap();
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path.file_name().and_then(|n| n.to_str()).expect("utf-8 file name");
        writeln!(out, "    ({name:?}, include_str!({:?})),", path.display().to_string()).unwrap();
    }
    writeln!(out, "];").unwrap();
    let dest = Path::new(&std::env::var("OUT_DIR").expect("set by cargo")).join("demo_rules.rs");
    std::fs::write(dest, out).expect("write demo_rules.rs");
}
