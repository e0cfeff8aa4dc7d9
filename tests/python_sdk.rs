//! Runs the `openai` Python SDK suite (tests/python) against the built binary.
//!
//! Needs `python3` with the packages in tests/python/requirements.txt. When they are missing
//! the test says so and passes, unless `CLAWGATE_REQUIRE_PYTHON=1` (as CI sets it), where it
//! fails.

use std::path::Path;
use std::process::Command;

#[test]
fn openai_python_sdk_suite_passes() {
    let required = std::env::var("CLAWGATE_REQUIRE_PYTHON").is_ok_and(|v| v == "1");
    let probe = Command::new("python3")
        .args(["-c", "import openai, pytest"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        _ => {
            assert!(
                !required,
                "python3 with `openai` and `pytest` is required: pip install -r tests/python/requirements.txt"
            );
            eprintln!("skipping the openai SDK suite: pip install -r tests/python/requirements.txt to run it");
            return;
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let status = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(&dir)
        .env("CLAWGATE_BIN", env!("CARGO_BIN_EXE_clawgate"))
        .status()
        .expect("pytest runs");
    assert!(
        status.success(),
        "the openai SDK suite failed (output above)"
    );
}
