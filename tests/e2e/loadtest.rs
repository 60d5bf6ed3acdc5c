//! `vigie loadtest` against the ENT look-alike of the loadtest crate's test suite: the shipped
//! scenario with 1,000 users, the refusal of a foreign target, Ctrl-C's partial report.

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use loadtest::testsuite::EntServer;

use crate::support::vigie;

fn scenario() -> String {
    format!("{}/loadtest/scenarios/ent-blog.yml", env!("CARGO_MANIFEST_DIR"))
}

/// A runtime serving the ENT look-alike while the test drives the binary.
fn ent() -> (tokio::runtime::Runtime, EntServer) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let server = runtime.block_on(EntServer::start()).unwrap();
    (runtime, server)
}

#[test]
fn loadtest_thousand_users_run_the_shipped_ent_scenario() {
    let (_runtime, server) = ent();
    let output = vigie()
        .args(["loadtest", &scenario(), "--target", &server.base_url()])
        .args(["--users", "1000", "--iterations", "1", "--no-think", "--max-rate", "none", "--json", "--quiet"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["errors"], 0, "{report:#}");
    assert_eq!(report["iterations"]["completed"], 1000);
    assert_eq!(report["responses"], 6000);
    let steps = report["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "page de connexion",
            "connexion",
            "blog de la classe",
            "publier un article",
            "relire l'article",
            "déconnexion"
        ]
    );
    assert!(steps.iter().all(|s| s["responses"] == 1000 && s["latency_ms"]["p99"].is_number()));
    let c = &server.counters;
    assert_eq!(c.logins.load(Ordering::Relaxed), 1000);
    assert_eq!(c.articles.load(Ordering::Relaxed), 1000);
    assert_eq!(c.logouts.load(Ordering::Relaxed), 1000);
    assert_eq!(c.rejected.load(Ordering::Relaxed), 0);
    assert_eq!(c.connections.load(Ordering::Relaxed), 1000);
}

#[test]
fn loadtest_text_report_is_in_french() {
    let (_runtime, server) = ent();
    let output = vigie()
        .args(["loadtest", &scenario(), "--target", &server.base_url()])
        .args(["--users", "3", "--iterations", "2", "--no-think", "--quiet"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    for needle in [
        "Test de charge « ENT — blog de la classe »",
        "3 utilisateurs constants",
        "Parcours : 6 terminés",
        "Erreurs : aucune",
        "Latence (ms)",
        "publier un article",
        "toutes",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn loadtest_refuses_a_target_outside_the_allow_list() {
    let output = vigie().args(["loadtest", "--url", "https://ent.example.fr/", "--duration", "1s"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing to load-test https://ent.example.fr:443"), "{stderr}");
    assert!(stderr.contains("--allow ent.example.fr") && stderr.contains("--i-own-this-target"), "{stderr}");
    assert!(output.stdout.is_empty());

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vigie.toml");
    std::fs::write(&config, "[loadtest]\nallow = [\"ent.example.fr\"]\nmax_rte = 5\n").unwrap();
    let output = vigie()
        .args(["loadtest", "--url", "https://ent.example.fr/", "--duration", "1s", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("max_rte") && stderr.contains("[loadtest]"), "{stderr}");
}

#[test]
fn loadtest_reports_scenario_mistakes_with_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yml");
    std::fs::write(&file, "base_url: http://127.0.0.1:9\nsteps:\n  - url: /x/{{id}}\n").unwrap();
    let output = vigie().args(["loadtest"]).arg(&file).args(["--iterations", "1"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("bad.yml") && stderr.contains("step 1 (/x/{{id}})") && stderr.contains("`{{id}}`"),
        "{stderr}"
    );
}

#[test]
fn loadtest_ctrl_c_stops_with_a_partial_report() {
    let (_runtime, server) = ent();
    let child = vigie()
        .args(["loadtest", &scenario(), "--target", &server.base_url(), "--users", "20", "--duration", "10m"])
        .args(["--json", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the users are inside the scenario (they think 1 to 3 s after the login page).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.counters.login_pages.load(Ordering::Relaxed) < 20 {
        assert!(std::time::Instant::now() < deadline, "the users never reached the login page");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["interrupted"], true);
    assert!(report["elapsed_seconds"].as_f64().unwrap() < 60.0);
    assert_eq!(report["iterations"]["interrupted"], 20);
    assert_eq!(report["steps"][0]["responses"], 20);
}
