//! `vigie check-config` on broken files: every problem named with its line and key, exit 2.

use crate::support::vigie;

/// Checks `text`, plus the required on-call address when it has no `[alerting]` section,
/// appended at the end so that line numbers stay those of `text`.
fn check(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vigie.toml");
    let text = if text.contains("[alerting]") {
        text.to_owned()
    } else {
        format!("{text}\n[alerting]\non_call = [\"astreinte@ville.fr\"]\n")
    };
    std::fs::write(&path, text).unwrap();
    let out = vigie().arg("check-config").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE");
    (out.status.code().unwrap(), stderr)
}

#[test]
fn a_valid_file_passes() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/vigie.example.toml");
    let out = vigie().arg("check-config").arg(example).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
}

#[test]
fn unknown_key() {
    let (code, err) = check("[alerting]\non_call = [\"a@b.fr\"]\nrepeat_evry = \"1h\"\n");
    assert_eq!(code, 2);
    assert!(err.contains("FILE:3:1: alerting.repeat_evry: unknown field `repeat_evry`"), "{err}");
}

#[test]
fn bad_duration() {
    let (code, err) = check("[pipeline]\ncommit_interval = \"1 minute\"\n");
    assert_eq!(code, 2);
    assert!(err.contains("FILE:2:19: pipeline.commit_interval"), "{err}");
    assert!(err.contains("hint: write a number and a unit"), "{err}");
}

#[test]
fn unknown_time_zone() {
    let (code, err) = check("[pipeline]\ntime_zone = \"Europe/Lutece\"\n");
    assert_eq!(code, 2);
    assert!(err.contains("FILE:2:13: pipeline.time_zone: unknown time zone `Europe/Lutece`"), "{err}");
}

#[test]
fn wrong_type() {
    let (code, err) = check("[retention]\nkeep_days = \"a year\"\n");
    assert_eq!(code, 2);
    assert!(err.contains("FILE:2:13: retention.keep_days"), "{err}");
    assert!(err.contains("invalid type"), "{err}");
}

#[test]
fn every_problem_at_once() {
    let (code, err) =
        check("[server]\nlisten = \"nowhere\"\n\n[retention]\nkeep_days = \"a year\"\n\n[colour]\nx = 1\n");
    assert_eq!(code, 2);
    assert!(err.contains("3 problems"), "{err}");
    assert!(err.contains("FILE:2:10: server.listen"), "{err}");
    assert!(err.contains("FILE:5:13: retention.keep_days"), "{err}");
    assert!(err.contains("FILE:7:2: colour: unknown section"), "{err}");
}

#[test]
fn no_on_call_address() {
    let (code, err) = check("[alerting]\nfrom = \"vigie@ville.fr\"\n");
    assert_eq!(code, 2);
    assert!(err.contains("alerting: invalid alerting policy: on_call lists no address"), "{err}");
}

#[test]
fn missing_file() {
    let out = vigie().args(["check-config", "/nonexistent/vigie.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/vigie.toml") && err.contains("cannot read the file"), "{err}");
}
