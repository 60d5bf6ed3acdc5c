//! Alerting end to end, against a real SMTP server (Debian's `python3-aiosmtpd`): the demo's
//! ENT outage → the IT service is emailed → the demo approver approves → one notice per
//! director → the outage ends → "service rétabli"; an SMTP server down during a burst and a
//! `kill -9` mid-send lose nothing. Received messages are parsed by Python's `email` package,
//! independently of lettre.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Running, free_port, vigie};

/// The first Python that has aiosmtpd (scripts/test.sh installs it).
fn python() -> &'static str {
    for candidate in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(candidate)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return candidate;
        }
    }
    panic!("these tests need a real SMTP server: `apt-get install -y python3-aiosmtpd` (scripts/test.sh does it)");
}

/// aiosmtpd storing every message in a Maildir; killed on drop.
struct Smtp {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Smtp {
    fn start(port: u16, maildir: &Path) -> Smtp {
        let child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Smtp { child, port, maildir: maildir.to_owned() }
    }

    fn files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.maildir.join("new"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One received message, parsed by Python's email package.
#[derive(Debug, Clone)]
struct Mail {
    subject: String,
    to: String,
    message_id: String,
    content_type: String,
    /// `(content type, transfer encoding, charset, decoded text)` of each leaf part.
    parts: Vec<(String, String, String, String)>,
}

const PARSE: &str = r#"
import email, email.policy, html, json, sys
out = []
for path in sys.argv[1:]:
    m = email.message_from_binary_file(open(path, 'rb'), policy=email.policy.default)
    parts = []
    for p in m.walk():
        if p.is_multipart():
            continue
        text = p.get_content()
        if p.get_content_type() == 'text/html':
            text = html.unescape(text)
        parts.append([p.get_content_type(), str(p['content-transfer-encoding']), str(p.get_content_charset()), text])
    out.append({'subject': str(m['subject']), 'to': str(m['to']), 'message_id': str(m['message-id']),
                'content_type': m.get_content_type(), 'parts': parts})
json.dump(out, sys.stdout)
"#;

fn parse(files: &[PathBuf]) -> Vec<Mail> {
    if files.is_empty() {
        return Vec::new();
    }
    let out = Command::new(python()).arg("-c").arg(PARSE).args(files).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    json.as_array()
        .unwrap()
        .iter()
        .map(|m| Mail {
            subject: s(&m["subject"]),
            to: s(&m["to"]),
            message_id: s(&m["message_id"]),
            content_type: s(&m["content_type"]),
            parts: m["parts"].as_array().unwrap().iter().map(|p| (s(&p[0]), s(&p[1]), s(&p[2]), s(&p[3]))).collect(),
        })
        .collect()
}

fn wait_until(what: &str, timeout: Duration, running: &mut Running, mut check: impl FnMut() -> bool) {
    running.wait_for(what, timeout, |_| check());
}

#[test]
fn demo_outage_tells_it_then_every_director_after_approval_then_retabli() {
    let work = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(free_port(), &work.path().join("maildir"));
    let data = work.path().join("data");
    let mut demo = Running::demo(&data, &["--smtp", &format!("127.0.0.1:{}", smtp.port), "--for", "240s"]);
    let count = |prefix: &str| parse(&smtp.files()).iter().filter(|m| m.subject.starts_with(prefix)).count();

    // The demo's outage starts about 35 s in; the IT service is told at once.
    wait_until("the IT service's outage email", Duration::from_secs(120), &mut demo, || {
        count("[Vigie] INTERRUPTION — ENT") == 1
    });
    // The demo approver approves after 30 s: 188 notices, one per school.
    wait_until("188 director notices", Duration::from_secs(90), &mut demo, || count("ENT indisponible — ") == 188);
    let mails = parse(&smtp.files());
    let approval = mails.iter().find(|m| m.subject.contains("À VALIDER")).expect("the approval request");
    assert_eq!(approval.to, "dsi@ville-exemple.fr");
    assert!(approval.parts.iter().any(|p| p.3.contains("/notices/approve?token=")), "{approval:?}");

    let notices: Vec<&Mail> = mails.iter().filter(|m| m.subject.starts_with("ENT indisponible — ")).collect();
    let mut schools = BTreeMap::new();
    for m in &notices {
        let school = m.subject.trim_start_matches("ENT indisponible — ").to_owned();
        assert_eq!(m.content_type, "multipart/alternative", "{m:?}");
        assert_eq!(m.parts.len(), 2, "{m:?}");
        let (plain, html) = (&m.parts[0], &m.parts[1]);
        assert_eq!((plain.0.as_str(), plain.2.as_str()), ("text/plain", "utf-8"), "{m:?}");
        assert_eq!(html.0, "text/html", "{m:?}");
        assert!(["quoted-printable", "base64", "8bit"].contains(&plain.1.as_str()), "{m:?}");
        for (_, _, _, text) in [plain, html] {
            assert!(text.contains(&school), "the school's name in {text}");
            assert!(text.contains("Durée estimée") && text.contains("2 h 00 min"), "duration in {text}");
            assert!(text.contains("rétablissement"), "recovery time in {text}");
        }
        assert!(plain.3.contains("L'ENT est actuellement indisponible, depuis le "), "{}", plain.3);
        schools.insert(school, m.to.clone());
    }
    assert_eq!(schools.len(), 188, "every school once");
    let ids: std::collections::HashSet<&str> = notices.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids.len(), 188, "distinct Message-IDs");

    // The outage ends at about 95 s and the alert resolves 30 s later: "rétabli".
    wait_until("188 'service rétabli' notices", Duration::from_secs(150), &mut demo, || {
        count("ENT : service rétabli — ") == 188
    });
    wait_until("the IT service's 'rétabli'", Duration::from_secs(30), &mut demo, || {
        count("[Vigie] RÉTABLI — ENT") == 1
    });
    let restored = parse(&smtp.files()).into_iter().find(|m| m.subject.starts_with("ENT : service rétabli")).unwrap();
    assert!(restored.parts[0].3.contains("de nouveau disponible depuis le "), "{restored:?}");
    demo.terminate();
    assert!(demo.wait_exit(Duration::from_secs(60)).success(), "{}", demo.log());
}

/// A configuration for `vigie run` whose only work is emailing: no source, SMTP at `port`.
fn config(dir: &Path, smtp_port: u16, listen: &str) -> PathBuf {
    let path = dir.join("vigie.toml");
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    // The default rules, so the stack starts as it would on a real site.
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/rules")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yml") {
            std::fs::copy(&path, rules.join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(
        &path,
        format!(
            "[data]\ndir = \"data\"\n[server]\nlisten = \"{listen}\"\n[analyzer]\nrules = \"rules\"\n\
             [alerting]\non_call = [\"astreinte@ville.test\"]\nfrom = \"vigie@ville.test\"\n\
             it_service = [\"sctn@ville.test\"]\n\
             [alerting.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\n\
             [alerting.notices]\napprovers = [\"dsi@ville.test\"]\nper_minute = 600\n\
             [enrich]\ndemo_schools = true\n"
        ),
    )
    .unwrap();
    path
}

fn cli(config: &Path, args: &[&str]) -> String {
    let out = vigie().args(args).arg("--config").arg(config).output().unwrap();
    assert!(
        out.status.success(),
        "vigie {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn smtp_down_during_a_burst_then_kill_9_mid_send_loses_nothing_and_duplicates_nothing() {
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{}", free_port());
    let config = config(work.path(), port, &listen);

    // First start creates the database; the SMTP server is down.
    let mut run = Running::run(&config, &listen);
    run.wait_for("the dashboard", Duration::from_secs(60), |r| r.get("/healthz").is_some());
    // A burst: a maintenance notice approved at once = 188 director emails (10 a second),
    // queued while SMTP is down.
    let start = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(48)).unwrap();
    let end = start.checked_add(jiff::SignedDuration::from_hours(2)).unwrap();
    let out = cli(
        &config,
        &["maintenance", "add", "--start", &start.to_string(), "--end", &end.to_string(), "--by", "m.martin"],
    );
    let id = out.split_whitespace().nth(1).unwrap().to_owned();
    let out = cli(&config, &["notice", "approve", &id, "--by", "m.martin"]);
    assert!(out.contains("188 emails queued"), "{out}");
    // Delivery fails (connection refused) and is retried with backoff; then vigie is killed.
    std::thread::sleep(Duration::from_secs(3));
    run.child.kill().unwrap();
    run.child.wait().unwrap();

    // The SMTP server comes back; vigie restarts and delivers everything.
    let smtp = Smtp::start(port, &work.path().join("maildir"));
    let mut run = Running::run(&config, &listen);
    // Kill -9 in the middle of sending, then restart once more.
    run.wait_for("the first deliveries", Duration::from_secs(120), |_| smtp.files().len() >= 20);
    Command::new("kill").args(["-9", &run.child.id().to_string()]).status().unwrap();
    run.child.wait().unwrap();
    let mut run = Running::run(&config, &listen);
    // 188 directors + the approval request (the maintenance has no IT email).
    let expected = 189;
    run.wait_for("every email", Duration::from_secs(240), |_| {
        let mails = parse(&smtp.files());
        let ids: std::collections::HashSet<&str> = mails.iter().map(|m| m.message_id.as_str()).collect();
        ids.len() >= expected
    });
    let mails = parse(&smtp.files());
    let ids: std::collections::HashSet<&str> = mails.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids.len(), expected, "none lost");
    // At-least-once: a message accepted just before the kill may come twice, with the same
    // Message-ID (receivers drop it); never more than the one in flight.
    assert!(mails.len() - ids.len() <= 1, "{} duplicates", mails.len() - ids.len());
    let schools: std::collections::HashSet<&str> =
        mails.iter().filter(|m| m.subject.starts_with("ENT : maintenance programmée")).map(|m| m.to.as_str()).collect();
    assert_eq!(schools.len(), 188);
    run.terminate();
    assert!(run.wait_exit(Duration::from_secs(60)).success(), "{}", run.log());
    let listed = cli(&config, &["notice", "list"]);
    assert!(listed.contains("sent 188 queued 0 bounced 0"), "{listed}");
}

#[test]
fn incidents_silences_and_the_monthly_report_from_the_command_line() {
    let work = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let config = config(work.path(), free_port(), &listen);
    let mut run = Running::run(&config, &listen);
    run.wait_for("the dashboard", Duration::from_secs(60), |r| r.get("/healthz").is_some());
    run.terminate();
    assert!(run.wait_exit(Duration::from_secs(60)).success());

    let out =
        cli(&config, &["incident", "open", "--class", "sinistre", "--title", "Disque détruit", "--by", "m.martin"]);
    assert!(out.contains("incident 1 (sinistre serveur) opened; deadline "), "{out}");
    let list = cli(&config, &["incident", "list"]);
    assert!(list.contains("sinistre\tDisque détruit") && list.contains("reste 5 h 59 min"), "{list}");
    let out = cli(&config, &["incident", "close", "1", "--resolution", "restauration J-1", "--by", "m.martin"]);
    assert!(out.contains("délai respecté"), "{out}");

    let out = cli(
        &config,
        &[
            "silence",
            "add",
            "--rule",
            "ent.server-errors",
            "--for",
            "2h",
            "--by",
            "m.martin",
            "--reason",
            "mise à jour PHP",
        ],
    );
    let id = out.split_whitespace().nth(1).unwrap().to_owned();
    let list = cli(&config, &["silence", "list"]);
    assert!(list.contains("rule=ent.server-errors") && list.contains("mise à jour PHP"), "{list}");
    cli(&config, &["silence", "expire", &id, "--by", "m.martin"]);
    assert!(cli(&config, &["silence", "list"]).contains("no active or scheduled silence"));

    let month = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("Europe/Paris").unwrap())
        .strftime("%Y-%m")
        .to_string();
    let out_dir = work.path().join("rapports");
    let out = vigie()
        .args(["report", "--month", &month, "--out"])
        .arg(&out_dir)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(out_dir.join(format!("rapport-{month}.html"))).unwrap();
    assert!(
        html.contains("Rapport d&#x27;exploitation de l&#x27;ENT") || html.contains("Rapport d'exploitation de l'ENT"),
        "{html}"
    );
    assert!(html.contains("Disque détruit") && html.contains("sinistre serveur"), "{html}");
    if Path::new("/usr/bin/chromium").exists() {
        let pdf = std::fs::read(out_dir.join(format!("rapport-{month}.pdf"))).unwrap();
        assert!(pdf.starts_with(b"%PDF-"), "a PDF");
    }
}
