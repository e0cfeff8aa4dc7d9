//! Runs the Python SDK suites (tests/python: the official `openai` SDK against the built
//! binary, and against mock upstreams speaking each provider's wire format).
//!
//! The suites need the packages in tests/python/requirements.txt. On first use this test
//! makes its own virtual environment under `target/python-venv` and installs them there with
//! pip (from PyPI), so `cargo test` needs nothing set up by hand; later runs reuse it until
//! requirements.txt changes. Only when no environment can be made (no `python3` with `venv`,
//! or no package index) does the test say so and pass, unless `CLAWGATE_REQUIRE_PYTHON=1` (as
//! CI sets it), where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// `target/`, wherever cargo put it.
fn target_dir() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_clawgate"));
    bin.ancestors()
        .nth(2)
        .map(Path::to_owned)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The venv's python with the requirements installed, or why there is none.
fn python_env() -> Result<PathBuf, String> {
    let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).map_err(|e| e.to_string())?;
    let venv = target_dir().join("python-venv");
    let python = venv.join("bin").join("python");
    let stamp = venv.join("requirements.installed");
    // One test process sets the environment up at a time.
    let lock = target_dir().join("python-venv.lock");
    let started = Instant::now();
    let _guard = loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(_) => break LockFile(lock.clone()),
            // Left by a run that was killed while setting up: no set-up takes this long.
            Err(_) if stale(&lock) => {
                let _ = std::fs::remove_file(&lock);
            }
            Err(_) if started.elapsed() < Duration::from_secs(600) => {
                std::thread::sleep(Duration::from_millis(200))
            }
            Err(e) => return Err(format!("{} is held: {e}", lock.display())),
        }
    };
    if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(python);
    }
    let run = |cmd: &mut Command, what: &str| -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{what} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    if !python.exists() {
        eprintln!("making {} (first use)", venv.display());
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        )?;
    }
    eprintln!(
        "installing tests/python/requirements.txt into {}",
        venv.display()
    );
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
        "pip install -r tests/python/requirements.txt",
    )?;
    std::fs::write(&stamp, &wanted).map_err(|e| e.to_string())?;
    Ok(python)
}

/// Whether a set-up lock is older than any set-up takes.
fn stale(lock: &Path) -> bool {
    std::fs::metadata(lock)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > Duration::from_secs(900))
}

/// Removes the set-up lock when dropped.
struct LockFile(PathBuf);

impl Drop for LockFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn openai_python_sdk_suite_passes() {
    let required = std::env::var("CLAWGATE_REQUIRE_PYTHON").is_ok_and(|v| v == "1");
    let python = match python_env() {
        Ok(p) => p,
        Err(why) => {
            assert!(!required, "no Python environment for the SDK suites: {why}");
            eprintln!("skipping the Python SDK suites: {why}");
            return;
        }
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let status = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(&dir)
        .env("CLAWGATE_BIN", env!("CARGO_BIN_EXE_clawgate"))
        .status()
        .expect("pytest runs");
    assert!(
        status.success(),
        "the Python SDK suite failed (output above)"
    );
}
