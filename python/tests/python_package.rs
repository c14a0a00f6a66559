//! The Python package, as a user gets it: the extension this workspace's test build made
//! (`lib_panorama.so`, the same compile as every other test) packed into a wheel with PyPA's
//! `wheel pack`, installed with `pip install`, and exercised by pytest
//! (`tests/test_panorama.py`) against a demo project the `panorama` CLI generated and ran.

use std::path::{Path, PathBuf};
use std::process::Command;

fn required() -> bool {
    std::env::var("PANORAMA_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// `target/debug` (or the profile's directory) of this test binary.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_wheel_installs_and_its_python_tests_pass() {
    let has = Command::new("python3")
        .args(["-c", "import pyarrow, pytest, wheel"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        assert!(
            !required(),
            "python3 with pyarrow, pytest and wheel is needed"
        );
        eprintln!("SKIPPED: python3 with pyarrow, pytest and wheel is not installed");
        return;
    }
    let dir = profile_dir();
    // A test build leaves the cdylib in `deps/` (only `cargo build` copies it up).
    let library = [
        dir.join("deps/lib_panorama.so"),
        dir.join("lib_panorama.so"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .unwrap_or_else(|| dir.join("deps/lib_panorama.so"));
    let cli = dir.join("panorama");
    assert!(
        library.is_file() && cli.is_file(),
        "{} and {} come from `cargo test --workspace` (the package's library and the CLI)",
        library.display(),
        cli.display()
    );
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let version = env!("CARGO_PKG_VERSION");
    let tmp = tempfile::tempdir().unwrap();

    // The wheel: the package's Python files, the extension under its abi3 name, metadata.
    let unpacked = tmp.path().join(format!("panorama-{version}"));
    let package = unpacked.join("panorama");
    std::fs::create_dir_all(&package).unwrap();
    std::fs::copy(
        here.join("panorama/__init__.py"),
        package.join("__init__.py"),
    )
    .unwrap();
    std::fs::copy(&library, package.join("_panorama.abi3.so")).unwrap();
    let info = unpacked.join(format!("panorama-{version}.dist-info"));
    std::fs::create_dir_all(&info).unwrap();
    std::fs::write(
        info.join("METADATA"),
        format!(
            "Metadata-Version: 2.1\nName: panorama\nVersion: {version}\n\
             Summary: {}\nLicense: Apache-2.0\nRequires-Python: >=3.9\nRequires-Dist: pyarrow>=14\n",
            env!("CARGO_PKG_DESCRIPTION")
        ),
    )
    .unwrap();
    std::fs::write(
        info.join("WHEEL"),
        "Wheel-Version: 1.0\nGenerator: panorama python_package.rs\nRoot-Is-Purelib: false\n\
         Tag: cp39-abi3-linux_x86_64\n",
    )
    .unwrap();
    let wheels = tmp.path().join("dist");
    std::fs::create_dir_all(&wheels).unwrap();
    run(Command::new("python3")
        .args(["-m", "wheel", "pack", "-d"])
        .arg(&wheels)
        .arg(&unpacked));
    let wheel = std::fs::read_dir(&wheels)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .expect("wheel pack wrote a wheel");
    assert!(
        wheel
            .file_name()
            .unwrap()
            .to_string_lossy()
            .ends_with("-cp39-abi3-linux_x86_64.whl"),
        "{}",
        wheel.display()
    );
    let site = tmp.path().join("site");
    run(Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--no-deps", "--target"])
        .arg(&site)
        .arg(&wheel));

    // A demo project, generated and run by the CLI.
    let project = tmp.path().join("demo");
    run(Command::new(&cli)
        .args(["demo", "--persons", "400", "--seed", "3", "-q", "--out"])
        .arg(&project));
    run(Command::new(&cli).args(["run", "-q", "-p"]).arg(&project));

    let out = run(Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(here.join("tests/test_panorama.py"))
        .env("PYTHONPATH", &site)
        .env("PANORAMA_TEST_PROJECT", &project)
        .env("PANORAMA_BIN", &cli)
        .current_dir(tmp.path()));
    assert!(out.contains("6 passed"), "{out}");
}
