//! Interop proof: Twilio's official Python SDK, with only its host rewritten, drives the twin,
//! and the SDK's own `RequestValidator` accepts the signatures the twin sends.
//!
//! The SDK is installed from PyPI into a virtual environment under the target directory the
//! first time (set `SWITCHBOARD_PYTHON` to choose the interpreter).

use sim::{Delays, NumberSettings, Sim};
use std::path::{Path, PathBuf};
use std::process::Command;

const SDK_REQUIREMENT: &str = "twilio>=9,<10";

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A virtual environment with the SDK, made once and reused.
fn sdk_python() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("twilio-python-sdk");
    let python = venv.join("bin").join("python");
    let marker = venv.join(".installed");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(SDK_REQUIREMENT) {
        return python;
    }
    let base = std::env::var("SWITCHBOARD_PYTHON").unwrap_or_else(|_| "python3".into());
    let _ = std::fs::remove_dir_all(&venv);
    run(
        Command::new(&base).args(["-m", "venv"]).arg(&venv),
        "creating a Python virtual environment",
    );
    run(
        Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            SDK_REQUIREMENT,
        ]),
        "installing the twilio SDK from PyPI",
    );
    std::fs::write(&marker, SDK_REQUIREMENT).expect("marker written");
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_works_against_the_twin() {
    let python = tokio::task::spawn_blocking(sdk_python).await.unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/sim", listener.local_addr().unwrap());
    let sim = Sim::new(&base);
    sim.set_delays(Delays {
        sending_ms: 20,
        sent_ms: 20,
        delivered_ms: 20,
    });
    let (sid, token) = sim.create_account(None, None).unwrap();
    sim.add_number(&sid, "+14155550100", &NumberSettings::default())
        .unwrap();
    let app = sim.app();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/interop.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .env("TWIN_BASE", &base)
        .env("TWILIO_ACCOUNT_SID", &sid)
        .env("TWILIO_AUTH_TOKEN", &token)
        .env("FROM_NUMBER", "+14155550100")
        .env("TO_NUMBER", "+14155550199")
        .env("OTHER_NUMBER", "+14155550188")
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "SDK checks failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all SDK checks passed"), "{stdout}");
}
