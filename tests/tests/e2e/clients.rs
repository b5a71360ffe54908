//! FHIR client libraries used as-is against `fhirgate up`: fhirpy runs the scripted session
//! of `tests/clients/session.py` (transaction, paging, `_include`, update, history).
//!
//! The client lives in the venv `./dev prereqs` makes (`target/py`); without it this test
//! fails, it never skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::Env;
use crate::cli::{fhirgate, start_up, stop_up};

crate::tests![fhirpy_session_against_up];

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv's Python, with the pinned client libraries importable.
fn python() -> Result<PathBuf> {
    let python = root().join("target/py/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import fhirpy"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ensure!(
        ok,
        "{} cannot import fhirpy: run ./dev prereqs (it installs tests/clients/requirements.txt)",
        python.display()
    );
    Ok(python)
}

async fn fhirpy_session_against_up(_env: &Env) -> Result<()> {
    let python = python()?;
    let data = tests::temp_dir("fhirgate-clients");
    let result = session(&python, &data).await;
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(data.with_extension("log"));
    result
}

async fn session(python: &Path, data: &Path) -> Result<()> {
    let up = start_up(data).await?;
    let outcome = run_script(python, data, &up.base).await;
    stop_up(up).await?;
    outcome
}

async fn run_script(python: &Path, data: &Path, base: &str) -> Result<()> {
    let (ok, token) = fhirgate(
        &["token", "--role", "system", "--scope", "system/*.cruds"],
        data,
    )?;
    ensure!(ok, "fhirgate token failed: {token}");
    let out_path = data.join("session.out");
    let out = std::fs::File::create(&out_path)?;
    let mut child = Command::new(python)
        .arg(root().join("tests/clients/session.py"))
        .args([base, &token])
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("starting the client session")?;
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the client session did not end within 180 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    ensure!(
        status.success(),
        "the fhirpy session failed ({status}):\n{output}"
    );
    ensure!(
        output.contains("session ok"),
        "the fhirpy session ended without its last line:\n{output}"
    );
    Ok(())
}
