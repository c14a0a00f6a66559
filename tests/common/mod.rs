//! Running the `panorama` binary as a user would, shared by the CLI test files.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

pub fn panorama(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_panorama"))
        .args(args)
        .env_remove("PANORAMA_PROJECT")
        .output()
        .expect("panorama binary runs")
}

/// Runs and must succeed; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = panorama(args);
    assert!(
        out.status.success(),
        "panorama {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs and must fail; returns stderr.
pub fn fails(args: &[&str]) -> String {
    let out = panorama(args);
    assert!(
        !out.status.success(),
        "panorama {args:?} should have failed; stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

pub fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from} not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

pub fn append(path: &Path, text: &str) {
    let mut all = std::fs::read_to_string(path).unwrap();
    all.push_str(text);
    std::fs::write(path, all).unwrap();
}

/// CSV output of a query on the current run.
pub fn query(project: &Path, sql: &str) -> String {
    ok(&["query", "-p", p(project), "--format", "csv", sql])
}

/// The hand-checked shop of `tests/slt/measures.slt`, copied to a temp dir.
pub fn shop_project() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/shop");
    for f in [
        "panorama.toml",
        "data/customers.csv",
        "data/loyalty.csv",
        "data/orders.csv",
    ] {
        write(
            &tmp.path().join(f),
            &std::fs::read_to_string(from.join(f)).unwrap(),
        );
    }
    tmp
}
