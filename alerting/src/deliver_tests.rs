//! Delivery tests against a real SMTP server (Debian's `python3-aiosmtpd`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::outbox::{Email, Outbox, OutboxState};
use crate::store::tests::{detection, policy, t};
use crate::{AlertStore, AlertingMetrics};

/// An SMTP handler that stores mail in a Maildir like aiosmtpd's `Mailbox`, but refuses
/// `inconnu@…` permanently (550) and `plein@…` temporarily (452), to exercise both paths.
const HANDLER: &str = r#"
from aiosmtpd.handlers import Mailbox

class Handler(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("inconnu@"):
            return "550 5.1.1 <%s>: utilisateur inconnu" % address
        if address.startswith("plein@"):
            return "452 4.2.2 boite pleine"
        envelope.rcpt_tos.append(address)
        return "250 OK"
"#;

/// The first Python that has aiosmtpd; fails the test with the install command otherwise.
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
    panic!(
        "these tests need a real SMTP server: install Debian's aiosmtpd with \
         `apt-get install -y python3-aiosmtpd` (the module must import in /usr/bin/python3)"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running aiosmtpd, killed on drop.
struct SmtpServer {
    child: Child,
    maildir: PathBuf,
}

impl SmtpServer {
    fn start(port: u16, work: &Path) -> SmtpServer {
        let maildir = work.join("maildir");
        std::fs::write(work.join("vigie_test_handler.py"), HANDLER).unwrap();
        let child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "vigie_test_handler.Handler"])
            .arg(&maildir)
            .env("PYTHONPATH", work)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let mut server = SmtpServer { child, maildir };
        // Wait for the listener: an event, bounded so a broken install fails instead of hanging.
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("aiosmtpd exited at start with {status}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("aiosmtpd did not listen on port {port} within 10 s");
    }

    /// The raw messages received so far.
    fn messages(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.maildir.join("new")) {
            Ok(dir) => dir.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Subject, Message-ID, In-Reply-To and decoded plain-text part of a stored message, read by Python's own
/// email parser: an independent check that the MIME encoding is right.
fn decode(path: &Path) -> String {
    let script = "import email, email.policy, sys\n\
                  m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)\n\
                  print('Subject:', m['subject'])\n\
                  print('Message-ID:', m['message-id'])\n\
                  print('In-Reply-To:', m['in-reply-to'])\n\
                  print('To:', m['to'])\n\
                  print(m.get_body(preferencelist=('plain',)).get_content())";
    let out = Command::new(python()).args(["-c", script]).arg(path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn smtp(port: u16) -> Mailer {
    Mailer::new(&Transport::Smtp {
        host: "127.0.0.1".into(),
        port,
        starttls: false,
        username: None,
        password_env: None,
    })
    .unwrap()
}

fn email(n: u32, to: &str) -> Email {
    Email {
        message_id: format!("<test-{n}@ent.ville.test>"),
        in_reply_to: None,
        alert_id: None,
        from: "vigie@ent.ville.test".into(),
        to: vec![to.into()],
        subject: format!("[Vigie] essai n° {n}"),
        body: format!("Message d'essai n° {n}, accentué."),
        html: None,
        notice_id: None,
        school: None,
        attachments: Vec::new(),
    }
}

fn metrics_text(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

#[tokio::test]
async fn an_alert_email_reaches_the_smtp_server_in_french() {
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = SmtpServer::start(port, work.path());
    let db = work.path().join("alerts.sqlite");
    let now = t("2025-04-07T12:30:00Z");
    let mut store = AlertStore::open(&db, policy()).unwrap();
    store.ingest(&[detection(1, "203.0.113.9", "2025-04-07T12:29:00Z")], now).unwrap();
    store.tick(t("2025-04-07T13:00:00Z")).unwrap();

    let outbox = Arc::new(Mutex::new(Outbox::open(&db).unwrap()));
    let metrics = AlertingMetrics::default();
    let report = deliver_due(&outbox, &smtp(port), &metrics, t("2025-04-07T13:00:00Z")).await.unwrap();
    assert_eq!(report, DeliveryReport { sent: 2, retry_scheduled: 0, failed_permanently: 0 });

    let mut decoded: Vec<String> = server.messages().iter().map(|p| decode(p)).collect();
    decoded.sort_by_key(|m| m.contains("RÉSOLU"));
    assert_eq!(decoded.len(), 2);
    let firing = &decoded[0];
    assert!(firing.contains("Subject: [Vigie] CRITIQUE — Force brute sur la connexion ENT (203.0.113.9)"), "{firing}");
    assert!(firing.contains("Première détection : lundi 7 avril 2025, 14 h 29"), "{firing}");
    assert!(firing.contains("To: astreinte@ent.ville.test"), "{firing}");
    let id_line = firing.lines().find(|l| l.starts_with("Message-ID: <vigie.alert-1.")).unwrap();
    let resolved = &decoded[1];
    assert!(resolved.contains("Subject: [Vigie] RÉSOLU"), "{resolved}");
    assert!(
        resolved.contains(&id_line.replace("Message-ID:", "In-Reply-To:")),
        "the resolution threads under the alert:\n{resolved}"
    );
    let stats = outbox.lock().unwrap().stats().unwrap();
    assert_eq!((stats.sent, stats.queued), (2, 0));
}

#[tokio::test]
async fn an_attachment_survives_the_outbox_and_reaches_the_server_intact() {
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = SmtpServer::start(port, work.path());
    let db = work.path().join("alerts.sqlite");
    // Binary content with every byte value: base64 must carry it unchanged.
    let pdf: Vec<u8> = b"%PDF-1.7\n".iter().copied().chain((0..=255u8).cycle().take(5000)).collect();
    let mut report = email(1, "sctn@ville.test");
    report.html = Some("<p>Rapport d'exploitation de mars 2025</p>".into());
    report.attachments = vec![crate::Attachment {
        file_name: "rapport-2025-03.pdf".into(),
        content_type: "application/pdf".into(),
        data: pdf.clone(),
    }];
    let now = t("2025-04-01T07:00:00Z");
    Outbox::open(&db).unwrap().enqueue(&report, now).unwrap();
    // Read back from another connection, as the outbox task does after a restart.
    let outbox = Arc::new(Mutex::new(Outbox::open(&db).unwrap()));
    let queued = outbox.lock().unwrap().due(now, 10).unwrap();
    assert_eq!(queued[0].email.attachments, report.attachments);
    let sent = deliver_due(&outbox, &smtp(port), &AlertingMetrics::default(), now).await.unwrap();
    assert_eq!(sent.sent, 1);
    let message = server.messages().pop().expect("a message");
    let script = "import email, email.policy, sys, hashlib\n\
                  m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)\n\
                  print(m.get_content_type())\n\
                  print(m.get_body(preferencelist=('html',)).get_content().strip())\n\
                  for a in m.iter_attachments():\n    \
                      print(a.get_filename(), a.get_content_type(), hashlib.sha256(a.get_content()).hexdigest())";
    let out = Command::new(python()).args(["-c", script]).arg(&message).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = String::from_utf8(out.stdout).unwrap();
    let expected = format!(
        "multipart/mixed\n<p>Rapport d'exploitation de mars 2025</p>\nrapport-2025-03.pdf application/pdf {}\n",
        sha256_hex(&pdf)
    );
    assert_eq!(out, expected);
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn an_smtp_outage_loses_nothing_across_an_outbox_restart() {
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("alerts.sqlite");
    let port = free_port(); // nobody listens yet: the mail server is down
    let mut registry = Registry::default();
    let metrics = AlertingMetrics::register(&mut registry);
    let start = t("2025-04-07T12:00:00Z");
    {
        let outbox = Arc::new(Mutex::new(Outbox::open(&db).unwrap()));
        for n in 1..=3 {
            outbox.lock().unwrap().enqueue(&email(n, "astreinte@ent.ville.test"), start).unwrap();
        }
        let report = deliver_due(&outbox, &smtp(port), &metrics, start).await.unwrap();
        assert_eq!(report.retry_scheduled, 3);
        let queued = outbox.lock().unwrap().entries(OutboxState::Queued, 10).unwrap();
        assert_eq!(queued.len(), 3);
        for entry in &queued {
            assert_eq!(entry.attempts, 1);
            let error = entry.last_error.as_deref().unwrap();
            assert!(error.starts_with("retryable:"), "{error}");
            // Backoff with jitter: 10 s scaled into [5 s, 10 s].
            let wait = entry.next_attempt_at.duration_since(start);
            assert!(wait >= SignedDuration::from_secs(5) && wait <= SignedDuration::from_secs(10), "{wait:?}");
        }
        // A retry before the backoff elapsed does not hammer the server.
        let early = deliver_due(&outbox, &smtp(port), &metrics, t("2025-04-07T12:00:04Z")).await.unwrap();
        assert_eq!(early, DeliveryReport::default());
    } // the outbox process stops

    let server = SmtpServer::start(port, work.path()); // the mail server comes back
    let outbox = Arc::new(Mutex::new(Outbox::open(&db).unwrap())); // and the outbox restarts
    assert_eq!(outbox.lock().unwrap().pending().unwrap(), 3, "nothing lost");
    let later = t("2025-04-07T12:01:00Z");
    let report = deliver_due(&outbox, &smtp(port), &metrics, later).await.unwrap();
    assert_eq!(report.sent, 3);
    let mut subjects: Vec<String> =
        server.messages().iter().map(|p| decode(p).lines().next().unwrap().to_owned()).collect();
    subjects.sort();
    assert_eq!(subjects, ["Subject: [Vigie] essai n° 1", "Subject: [Vigie] essai n° 2", "Subject: [Vigie] essai n° 3"]);
    assert_eq!(outbox.lock().unwrap().pending().unwrap(), 0);
    let text = metrics_text(&registry);
    assert!(text.contains("vigie_notifications_failed_total{kind=\"retryable\"} 3"), "{text}");
    assert!(text.contains("vigie_notifications_sent_total 3"), "{text}");
    assert!(text.contains("vigie_notifications_queued 0"), "{text}");
}

#[tokio::test]
async fn a_permanent_refusal_is_recorded_and_never_retried_a_temporary_one_is() {
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = SmtpServer::start(port, work.path());
    let db = work.path().join("alerts.sqlite");
    let outbox = Arc::new(Mutex::new(Outbox::open(&db).unwrap()));
    let now = t("2025-04-07T12:00:00Z");
    {
        let mut o = outbox.lock().unwrap();
        o.enqueue(&email(1, "inconnu@ent.ville.test"), now).unwrap();
        o.enqueue(&email(2, "plein@ent.ville.test"), now).unwrap();
        o.enqueue(&email(3, "astreinte@ent.ville.test"), now).unwrap();
    }
    let metrics = AlertingMetrics::default();
    let report = deliver_due(&outbox, &smtp(port), &metrics, now).await.unwrap();
    assert_eq!(report, DeliveryReport { sent: 1, retry_scheduled: 1, failed_permanently: 1 });

    {
        let o = outbox.lock().unwrap();
        let failed = o.entries(OutboxState::Failed, 10).unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].email.message_id, "<test-1@ent.ville.test>");
        let reason = failed[0].last_error.as_deref().unwrap();
        assert!(reason.starts_with("permanent:") && reason.contains("550"), "{reason}");
        let queued = o.entries(OutboxState::Queued, 10).unwrap();
        assert_eq!(queued.len(), 1);
        assert!(queued[0].last_error.as_deref().unwrap().contains("452"), "{:?}", queued[0].last_error);
        let stats = o.stats().unwrap();
        assert_eq!((stats.sent, stats.queued, stats.failed_permanently), (1, 1, 1));
    }

    // Much later the temporary refusal is retried; the permanent one is not.
    let report = deliver_due(&outbox, &smtp(port), &metrics, t("2025-04-08T12:00:00Z")).await.unwrap();
    assert_eq!(report, DeliveryReport { sent: 0, retry_scheduled: 1, failed_permanently: 0 });
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn the_directory_transport_writes_eml_files() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("outbox-eml");
    let mailer = Mailer::new(&Transport::Directory(dir.clone())).unwrap();
    let outbox = Arc::new(Mutex::new(Outbox::open(&work.path().join("alerts.sqlite")).unwrap()));
    let now = t("2025-04-07T12:00:00Z");
    outbox.lock().unwrap().enqueue(&email(7, "astreinte@ent.ville.test"), now).unwrap();
    let report = deliver_due(&outbox, &mailer, &AlertingMetrics::default(), now).await.unwrap();
    assert_eq!(report.sent, 1);
    let files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].extension().unwrap(), "eml");
    let decoded = decode(&files[0]);
    assert!(decoded.contains("Message-ID: <test-7@ent.ville.test>"), "{decoded}");
    assert!(decoded.contains("Message d'essai n° 7, accentué."), "{decoded}");
}

#[tokio::test]
async fn run_outbox_delivers_what_is_queued_and_stops_on_cancel() {
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = SmtpServer::start(port, work.path());
    let db = work.path().join("alerts.sqlite");
    Outbox::open(&db).unwrap().enqueue(&email(1, "astreinte@ent.ville.test"), Timestamp::now()).unwrap();
    let transport =
        Transport::Smtp { host: "127.0.0.1".into(), port, starttls: false, username: None, password_env: None };
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_outbox(db.clone(), transport, AlertingMetrics::default(), cancel.clone()));
    // Wait for the delivery itself (bounded), not for an amount of time.
    let mut delivered = false;
    for _ in 0..400 {
        if Outbox::open(&db).unwrap().stats().unwrap().sent == 1 {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(delivered, "the email was not delivered within 20 s");
    assert_eq!(server.messages().len(), 1);
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[test]
fn a_missing_password_variable_is_named_in_the_error() {
    let err = Mailer::new(&Transport::Smtp {
        host: "smtp.ville.test".into(),
        port: 587,
        starttls: true,
        username: Some("vigie".into()),
        password_env: Some("VIGIE_TEST_SMTP_PASSWORD_THAT_IS_NOT_SET".into()),
    })
    .unwrap_err();
    assert!(matches!(err, AlertError::MissingPassword { .. }), "{err}");
    assert!(err.to_string().contains("VIGIE_TEST_SMTP_PASSWORD_THAT_IS_NOT_SET"), "{err}");
}

/// Every part of a stored message, read by Python's email parser: headers (decoded), then
/// each leaf part's content type, transfer encoding and decoded text, separated by `=====`.
fn decode_parts(path: &Path) -> String {
    let script = "import email, email.policy, sys\n\
                  m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)\n\
                  print('Subject:', m['subject'])\n\
                  print('To:', m['to'])\n\
                  print('Message-ID:', m['message-id'])\n\
                  print('Content-Type:', m.get_content_type())\n\
                  for part in m.walk():\n\
                  \x20   if part.is_multipart():\n\
                  \x20       continue\n\
                  \x20   print('=====', part.get_content_type(), part['content-transfer-encoding'], part.get_content_charset())\n\
                  \x20   print(part.get_content())";
    let out = Command::new(python()).args(["-c", script]).arg(path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn an_outage_notice_reaches_every_director_only_after_approval_then_retabli() {
    use crate::notice::tests::notice_policy;
    use crate::{Notices, SigningKey};
    use analyzer::OutageChange;

    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = SmtpServer::start(port, work.path());
    let db = work.path().join("alerts.sqlite");
    let mut notices = Notices::open(&db, notice_policy(3), SigningKey::from_bytes([4; 32])).unwrap();
    let outbox = Arc::new(Mutex::new(Outbox::open(&db).unwrap()));
    let metrics = AlertingMetrics::default();
    let mailer = smtp(port);

    let start = t("2025-04-07T12:30:00Z");
    let id = notices.on_outage("ENT", &OutageChange::Opened { start }, start).unwrap().unwrap();
    deliver_due(&outbox, &mailer, &metrics, start).await.unwrap();
    let received: Vec<String> = server.messages().iter().map(|p| decode_parts(p)).collect();
    assert_eq!(received.len(), 2, "the IT service and the approver, nobody else yet");
    let it = received.iter().find(|m| m.contains("To: sctn@ville.test")).unwrap();
    assert!(it.contains("Subject: [Vigie] INTERRUPTION — ENT indisponible depuis lundi 7 avril 2025, 14 h 30"), "{it}");
    notices.approve(id, "dsi.chef@ville.test", t("2025-04-07T12:35:00Z")).unwrap();
    // The rate limit spreads the three emails over two seconds.
    deliver_due(&outbox, &mailer, &metrics, t("2025-04-07T12:35:02Z")).await.unwrap();
    let directors: Vec<String> =
        server.messages().iter().map(|p| decode_parts(p)).filter(|m| m.contains("To: ce.0750")).collect();
    assert_eq!(directors.len(), 3, "one per director");
    for n in 0..3 {
        let m = directors.iter().find(|m| m.contains(&format!("To: ce.0750{n:03}a@ac-exemple.fr"))).unwrap();
        let school = format!("École élémentaire n° {n} « Les Acacias »");
        assert!(m.contains(&format!("Subject: ENT indisponible — {school}")), "{m}");
        assert!(m.contains("Content-Type: multipart/alternative"), "{m}");
        let parts: Vec<&str> = m.split("=====").skip(1).collect();
        assert_eq!(parts.len(), 2, "plain text and HTML: {m}");
        assert!(parts[0].starts_with(" text/plain") && parts[0].contains("utf-8"), "{}", parts[0]);
        assert!(parts[1].starts_with(" text/html"), "{}", parts[1]);
        for part in &parts {
            assert!(part.contains(&school), "{part}");
            assert!(part.contains("lundi 7 avril 2025, 16 h 30"), "recovery time in {part}");
            assert!(part.contains("2 h 00 min"), "duration in {part}");
        }
    }

    notices
        .on_outage("ENT", &OutageChange::Closed { start, end: t("2025-04-07T13:40:00Z") }, t("2025-04-07T13:40:00Z"))
        .unwrap();
    deliver_due(&outbox, &mailer, &metrics, t("2025-04-07T13:40:05Z")).await.unwrap();
    let restored: Vec<String> = server
        .messages()
        .iter()
        .map(|p| decode_parts(p))
        .filter(|m| m.contains("Subject: ENT : service rétabli"))
        .collect();
    assert_eq!(restored.len(), 3);
    assert!(restored[0].contains("de nouveau disponible depuis le lundi 7 avril 2025, 15 h 40"), "{}", restored[0]);
    assert!(restored[0].contains("a duré 1 h 10 min"), "{}", restored[0]);
    assert_eq!(notices.deliveries(id).unwrap().sent, 6);
}
