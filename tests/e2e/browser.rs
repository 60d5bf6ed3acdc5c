//! The web pages in a real browser: Debian's headless Chromium, driven by playwright-core
//! (`tests/browser/ui.mjs`), against a `vigie demo` run. The script logs in as each demo role,
//! checks every page's headings and figures, approves the demo outage's notice, runs a
//! requisition search and downloads its export; its screenshots are kept as test artifacts
//! under `$CARGO_TARGET_DIR/browser-artifacts/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::sample;
use crate::web::Demo;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Where the screenshots, downloads and logs of the last run are kept.
fn artifacts() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target dir>/tmp`, wherever CARGO_TARGET_DIR points.
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("the target directory").join("browser-artifacts")
}

fn metrics(base: &str) -> Option<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    agent.get(&format!("{base}/metrics")).call().ok()?.body_mut().read_to_string().ok()
}

#[test]
fn browser_walks_every_page_approves_a_notice_and_exports_a_requisition() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: scripts/test.sh installs it (apt-get install chromium)"
    );
    // The npm packages (playwright-core, pinned), installed when missing or stale; offline on rerun.
    let install =
        Command::new("bash").arg(browser_dir.join("install.sh")).status().expect("run tests/browser/install.sh");
    assert!(install.success(), "tests/browser/install.sh failed ({install})");

    let out = artifacts();
    if out.exists() {
        std::fs::remove_dir_all(&out).unwrap();
    }
    std::fs::create_dir_all(&out).unwrap();
    println!("browser artifacts (screenshots, downloads, logs): {}", out.display());

    let dir = tempfile::tempdir().unwrap();
    let mut demo = Demo::start(dir.path(), &["--for", "420s", "--rate", "200"]);
    let accounts = demo.accounts();
    let json: serde_json::Value = accounts
        .iter()
        .map(|(role, a)| (role.clone(), serde_json::json!({"name": a.name, "password": a.password, "totp": a.totp})))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let accounts_file = dir.path().join("accounts.json");
    std::fs::write(&accounts_file, json.to_string()).unwrap();

    // Start once the attack burst (about 12 s in) went through the analyzer; the script then
    // waits for the outage (about 35 s in) and its notice itself.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let detections = metrics(&demo.base)
            .and_then(|m| sample(&m, "vigie_stage_events_out_total", "stage=\"analyzer\""))
            .unwrap_or(0.0);
        if detections > 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no detection within 90 s; log:\n{}", demo.log());
        std::thread::sleep(Duration::from_millis(500));
    }

    let run = Command::new("node")
        .current_dir(&browser_dir)
        .arg("ui.mjs")
        .args(["--base", &demo.base, "--out"])
        .arg(&out)
        .arg("--accounts")
        .arg(&accounts_file)
        .args(["--chromium", CHROMIUM, "--notice-wait", "150"])
        .output()
        .expect("run node (apt-get install nodejs)");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    std::fs::write(out.join("ui.log"), format!("{stdout}\n{stderr}")).unwrap();
    std::fs::write(out.join("vigie-demo.log"), demo.log()).unwrap();

    let shots: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
        .collect();
    assert!(
        run.status.success(),
        "the browser checks failed ({}); screenshots in {}:\n{stdout}\n{stderr}",
        run.status,
        out.display()
    );
    assert!(stdout.contains("every check passed"), "{stdout}");
    // Every role's pages were saved: 7 dashboards × 4 roles, 2 legal pages and the admin's audit.
    assert!(shots.len() >= 31, "{} screenshots in {}", shots.len(), out.display());
}
