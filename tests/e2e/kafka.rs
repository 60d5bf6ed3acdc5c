//! Scale-out through a real Kafka-protocol broker (tansu, started by `scripts/kafka.sh`): a
//! collector and an archiver run as separate `vigie run --role …` processes. Killing the
//! archiver with SIGKILL, or restarting the broker, in the middle of the stream loses no line
//! and archives none twice: at the end the archive holds exactly the lines the collector read.
//!
//! The broker is built once by `scripts/kafka.sh install` (scripts/test.sh runs it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Running, free_port, sample, vigie};

/// Lines written before the archiver is disturbed, then per chunk while it is.
const FIRST: usize = 3_000;
const CHUNK: usize = 500;
const CHUNKS: usize = 34;
/// Every line the test writes: what the archive must hold at the end, exactly.
const TOTAL: usize = FIRST + CHUNK * CHUNKS;

fn kafka_sh() -> Command {
    Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka.sh"))
}

/// A tansu broker with SQLite storage in `dir`, on a port of its own that survives restarts.
struct Broker {
    dir: PathBuf,
    addr: String,
}

impl Broker {
    fn start(dir: &Path) -> Broker {
        let bin = kafka_sh().arg("bin").output().expect("run scripts/kafka.sh");
        let bin = String::from_utf8(bin.stdout).unwrap();
        assert!(
            Path::new(bin.trim()).is_file(),
            "the tansu broker is not installed at {}: run `scripts/kafka.sh install` (scripts/test.sh does)",
            bin.trim()
        );
        let addr = Broker::launch(dir);
        Broker { dir: dir.to_owned(), addr }
    }

    fn launch(dir: &Path) -> String {
        let out = kafka_sh().arg("start").arg(dir).output().expect("run scripts/kafka.sh start");
        assert!(out.status.success(), "the broker did not start: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn create_topics(&self, partitions: u32, topics: &[&str]) {
        let out =
            kafka_sh().args(["topics", &self.addr, &partitions.to_string()]).args(topics).output().expect("kafka.sh");
        assert!(out.status.success(), "creating {topics:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn stop(&self) {
        let out = kafka_sh().arg("stop").arg(&self.dir).output().expect("run scripts/kafka.sh stop");
        assert!(out.status.success(), "stopping the broker: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Stops the broker, leaves it down for a second while the stream goes on, and starts it
    /// again on the same storage and port.
    fn restart(&self) {
        self.stop();
        std::thread::sleep(Duration::from_secs(1));
        let addr = Broker::launch(&self.dir);
        assert_eq!(addr, self.addr, "the broker came back on another address");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = kafka_sh().arg("stop").arg(&self.dir).output();
    }
}

/// Appends lines `from..to` (Apache combined, stamped now, 1,000 client addresses so that
/// every partition gets its share) to `path`.
fn append_lines(path: &Path, from: usize, to: usize) {
    let stamp = jiff::Timestamp::now().strftime("%d/%b/%Y:%H:%M:%S +0000").to_string();
    let mut out = std::io::BufWriter::new(std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap());
    for n in from..to {
        let client = n % 1000;
        writeln!(
            out,
            "10.20.{}.{} - - [{stamp}] \"GET /ent/page/{n} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\"",
            client / 250,
            client % 250 + 1,
            n % 5000
        )
        .unwrap();
    }
    out.flush().unwrap();
}

/// One scale-out deployment on one machine: a broker, a collector following `access.log`,
/// an archiver writing its archive in `archiver/`.
/// Fields drop in order: the collector, then the broker, then the directory they used.
struct Deployment {
    collector: Running,
    broker: Broker,
    log: PathBuf,
    archiver_config: PathBuf,
    archiver_listen: String,
    dir: tempfile::TempDir,
}

fn config(dir: &Path, role: &str, listen: &str, broker: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{role}.toml"));
    std::fs::write(
        &path,
        format!(
            "[roles]\nrun = \"{role}\"\n\n[data]\ndir = \"{data}\"\n\n[server]\nlisten = \"{listen}\"\n\n\
             [pipeline]\ncommit_interval = \"200ms\"\n\n[analyzer]\nrules = \"{rules}\"\n\n\
             [alerting]\non_call = [\"astreinte@ville.fr\"]\n\n{extra}\n\
             [kafka]\nbrokers = \"{broker}\"\nlag_interval = \"500ms\"\n",
            data = dir.join(role).display(),
            rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules"),
        ),
    )
    .unwrap();
    path
}

impl Deployment {
    /// Starts the broker, the topics, the archiver and the collector, and writes the first
    /// `FIRST` lines.
    fn start() -> (Deployment, Running) {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start(&dir.path().join("broker"));
        broker.create_topics(3, &["vigie.events", "vigie.detections"]);

        // The archiver seals and purges with a signing key, as in production.
        let key = dir.path().join("archive.key");
        let out = vigie().args(["archive", "keygen", "--key"]).arg(&key).output().unwrap();
        assert!(out.status.success(), "keygen: {}", String::from_utf8_lossy(&out.stderr));
        let archiver_listen = format!("127.0.0.1:{}", free_port());
        let retention = format!("[retention]\nsigning_key = \"{}\"\n", key.display());
        let archiver_config = config(dir.path(), "archiver", &archiver_listen, &broker.addr, &retention);
        let archiver = Running::run(&archiver_config, &archiver_listen);

        let log = dir.path().join("access.log");
        append_lines(&log, 0, FIRST);
        let source = format!(
            "[[sources]]\nid = \"ent\"\nkind = \"file\"\npath = \"{}\"\nformat = \"apache_combined\"\n",
            log.display()
        );
        let collector_listen = format!("127.0.0.1:{}", free_port());
        let collector_config = config(dir.path(), "collector", &collector_listen, &broker.addr, &source);
        let collector = Running::run(&collector_config, &collector_listen);
        (Deployment { collector, broker, log, archiver_config, archiver_listen, dir }, archiver)
    }

    fn archive(&self) -> PathBuf {
        self.dir.path().join("archiver")
    }

    fn start_archiver(&self) -> Running {
        Running::run(&self.archiver_config, &self.archiver_listen)
    }

    /// Writes the remaining chunks on a thread, one every 100 ms, as a busy web server would.
    fn keep_writing(&self) -> std::thread::JoinHandle<()> {
        let log = self.log.clone();
        std::thread::spawn(move || {
            for c in 0..CHUNKS {
                let from = FIRST + c * CHUNK;
                append_lines(&log, from, from + CHUNK);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    }

    fn produced(&self) -> f64 {
        self.collector
            .get("/metrics")
            .and_then(|(_, m)| sample(&m, "vigie_kafka_produced_total", "vigie.events"))
            .unwrap_or(0.0)
    }

    fn diagnostics(&self, archiver: &Running) -> String {
        format!(
            "--- archiver log:\n{}\n--- collector log:\n{}\n--- broker log (tail):\n{}",
            tail(&archiver.log()),
            tail(&self.collector.log()),
            tail(&self.broker.log())
        )
    }

    /// Waits for the collector to have every line acknowledged by the broker and the archive
    /// to hold them all, then stops the archiver cleanly and checks the archive: every line
    /// exactly once.
    fn finish(mut self, mut archiver: Running, writer: std::thread::JoinHandle<()>) {
        writer.join().unwrap();
        self.collector.wait_for("every line acknowledged by the broker", Duration::from_secs(180), |c| {
            c.get("/metrics")
                .and_then(|(_, m)| sample(&m, "vigie_kafka_produced_total", "vigie.events"))
                .is_some_and(|n| n >= TOTAL as f64)
        });
        // Idempotent producer: a retry after the broker's crash is recognised by its sequence number.
        assert_eq!(self.produced(), TOTAL as f64, "the collector produced each line once");
        let archive = self.archive();
        archiver.wait_for("every line in the archive", Duration::from_secs(180), |_| {
            documents(&archive).is_some_and(|n| n >= TOTAL as u64)
        });
        archiver.terminate();
        let status = archiver.wait_exit(Duration::from_secs(60));
        assert!(status.success(), "the archiver stopped badly ({status}); log:\n{}", archiver.log());
        let log = archiver.log();
        assert!(!log.contains("panicked"), "{log}");

        let diagnostics = self.diagnostics(&archiver);
        let stats = crate::crash::archive_stats(&archive);
        assert_eq!(stats["duplicate_ids"], 0, "a line was archived twice: {stats}\n{diagnostics}");
        assert_eq!(stats["documents"], TOTAL as u64, "every line exactly once: {stats}\n{diagnostics}");
        self.collector.terminate();
        let status = self.collector.wait_exit(Duration::from_secs(60));
        assert!(status.success(), "the collector stopped badly ({status}); log:\n{}", self.collector.log());
    }
}

/// Committed documents in the archive under `data`, or `None` before its first commit.
fn documents(data: &Path) -> Option<u64> {
    let out = vigie().args(["archive", "stats", "--data"]).arg(data).output().ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice::<serde_json::Value>(&out.stdout).ok()?["documents"].as_u64()
}

fn tail(log: &str) -> &str {
    let start = log.len().saturating_sub(6000);
    let start = (start..log.len()).find(|&i| log.is_char_boundary(i)).unwrap_or(log.len());
    &log[start..]
}

fn archived_records(archiver: &Running) -> f64 {
    archiver.get("/metrics").and_then(|(_, m)| sample(&m, "vigie_archive_records_total", "")).unwrap_or(0.0)
}

#[test]
fn kafka_archiver_killed_mid_stream_then_restarted_archives_every_line_exactly_once() {
    let (deployment, mut archiver) = Deployment::start();
    archiver.wait_for("the archiver's first records", Duration::from_secs(120), |a| archived_records(a) >= 500.0);
    let writer = deployment.keep_writing();
    // Let it commit some more of the stream, then SIGKILL: no flush, no commit, no goodbye.
    archiver.wait_for("more records", Duration::from_secs(120), |a| archived_records(a) >= 2_000.0);
    archiver.child.kill().unwrap();
    archiver.child.wait().unwrap();
    let at_kill = documents(&deployment.archive()).unwrap_or(0);
    assert!(at_kill < TOTAL as u64, "killed mid-stream: {at_kill} of {TOTAL} archived");

    // With no archiver at all, the collector goes on: the events wait in Kafka.
    let produced_at_kill = deployment.produced();
    let deadline = Instant::now() + Duration::from_secs(60);
    while deployment.produced() < produced_at_kill + CHUNK as f64 {
        assert!(Instant::now() < deadline, "the collector stalled while the archiver was down");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(archiver);

    // Same data directory, same consumer group: it resumes from the last committed offsets.
    let archiver = deployment.start_archiver();
    deployment.finish(archiver, writer);
}

#[test]
fn kafka_broker_restarted_mid_stream_loses_and_duplicates_nothing() {
    let (deployment, mut archiver) = Deployment::start();
    archiver.wait_for("the archiver's first records", Duration::from_secs(120), |a| archived_records(a) >= 500.0);
    let writer = deployment.keep_writing();
    std::thread::sleep(Duration::from_millis(700));
    let before = documents(&deployment.archive()).unwrap_or(0);
    assert!(before < TOTAL as u64, "the broker restarts mid-stream: {before} of {TOTAL} archived");
    // A crash (SIGKILL, see scripts/kafka.sh), then the same storage and port again: the
    // producer retries (idempotent, acks=all) and the consumer reconnects by themselves.
    deployment.broker.restart();
    deployment.finish(archiver, writer);
}

/// Appends `n` failed ENT logins (POST /login answered 401) from `client`, stamped now.
fn append_failed_logins(path: &Path, client: &str, n: usize) {
    let stamp = jiff::Timestamp::now().strftime("%d/%b/%Y:%H:%M:%S +0000").to_string();
    let mut out = std::io::BufWriter::new(std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap());
    for _ in 0..n {
        writeln!(out, "{client} - - [{stamp}] \"POST /login HTTP/1.1\" 401 512 \"-\" \"python-requests/2.31\"")
            .unwrap();
    }
    out.flush().unwrap();
}

/// The sum of every sample of `metric` (all partitions of all topics).
fn total(running: &Running, metric: &str) -> f64 {
    let Some((_, text)) = running.get("/metrics") else { return 0.0 };
    text.lines().filter(|l| l.starts_with(metric)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

/// The alert emails the alerter wrote (no SMTP server configured: `.eml` files in its outbox
/// directory), each as its subject and decoded text parts.
fn outbox_mails(alerter_data: &Path) -> Vec<String> {
    fn text(part: &mailparse::ParsedMail<'_>, out: &mut String) {
        if part.subparts.is_empty() {
            if part.ctype.mimetype == "text/plain" {
                out.push_str(&part.get_body().unwrap_or_default());
            }
        } else {
            part.subparts.iter().for_each(|p| text(p, out));
        }
    }
    let Ok(dir) = std::fs::read_dir(alerter_data.join("outbox")) else { return Vec::new() };
    let mut mails = Vec::new();
    for entry in dir.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "eml")) {
        let Ok(raw) = std::fs::read(entry.path()) else { continue };
        let mail = mailparse::parse_mail(&raw).expect("the outbox holds well-formed emails");
        let mut out = mail.headers.iter().find(|h| h.get_key() == "Subject").map(|h| h.get_value()).unwrap_or_default();
        out.push('\n');
        text(&mail, &mut out);
        mails.push(out);
    }
    mails
}

/// Issue 10's analyzer state under rebalance: a brute force (50 failed logins from one address
/// within 5 minutes, rule web.login-bruteforce-ip) is split across a SIGKILL of the analyzer.
/// The first 30 failures are analysed and their offsets committed before the kill; the 25
/// after the restart alone would stay under the threshold. The restarted analyzer rebuilds the
/// window by replaying its partitions' recent past, so the detection fires, reaches the
/// alerter through the detections topic, and becomes one alert email.
#[test]
fn kafka_analyzer_killed_mid_window_rebuilds_it_and_the_alerter_emails_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("broker"));
    broker.create_topics(3, &["vigie.events", "vigie.detections"]);
    let log = dir.path().join("access.log");
    append_lines(&log, 0, 200);

    let listen = |_: ()| format!("127.0.0.1:{}", free_port());
    let (alerter_listen, analyzer_listen, collector_listen) = (listen(()), listen(()), listen(()));
    let alerter_config = config(dir.path(), "alerter", &alerter_listen, &broker.addr, "");
    let mut alerter = Running::run(&alerter_config, &alerter_listen);
    let analyzer_config = config(dir.path(), "analyzer", &analyzer_listen, &broker.addr, "");
    let mut analyzer = Running::run(&analyzer_config, &analyzer_listen);
    let source = format!(
        "[[sources]]\nid = \"ent\"\nkind = \"file\"\npath = \"{}\"\nformat = \"apache_combined\"\n",
        log.display()
    );
    let collector_config = config(dir.path(), "collector", &collector_listen, &broker.addr, &source);
    let collector = Running::run(&collector_config, &collector_listen);

    // Benign traffic first, then the first 30 failures; wait until the analyzer committed them all.
    analyzer.wait_for("the benign traffic analysed", Duration::from_secs(120), |a| {
        total(a, "vigie_kafka_consumed_total") >= 200.0
    });
    append_failed_logins(&log, "203.0.113.66", 30);
    analyzer.wait_for("30 failures analysed and committed", Duration::from_secs(120), |a| {
        total(a, "vigie_kafka_consumed_total") >= 230.0 && total(a, "vigie_kafka_committed_offset") >= 230.0
    });
    assert!(outbox_mails(&dir.path().join("alerter")).is_empty(), "30 failures are under the threshold of 50");
    analyzer.child.kill().unwrap();
    analyzer.child.wait().unwrap();
    drop(analyzer);

    // 25 more while it is down: alone they are under the threshold too.
    append_failed_logins(&log, "203.0.113.66", 25);
    let mut analyzer = Running::run(&analyzer_config, &analyzer_listen);
    analyzer
        .wait_for("the window replayed", Duration::from_secs(120), |a| total(a, "vigie_kafka_replayed_total") >= 30.0);
    let alerter_data = dir.path().join("alerter");
    alerter.wait_for("the brute-force alert email", Duration::from_secs(120), |_| {
        outbox_mails(&alerter_data).iter().any(|m| m.contains("203.0.113.66"))
    });
    // Give a duplicate detection time to show up, then count: exactly one alert email.
    std::thread::sleep(Duration::from_secs(3));
    let mails: Vec<_> = outbox_mails(&alerter_data).into_iter().filter(|m| m.contains("203.0.113.66")).collect();
    assert_eq!(mails.len(), 1, "one alert email for the attack, not one per analyzer life: {mails:#?}");
    let mail = &mails[0];
    assert!(mail.contains("force brute"), "the email names the attack: {mail}");
    for process in [&analyzer, &alerter, &collector] {
        let log = process.log();
        assert!(!log.contains("panicked"), "{log}");
    }
}
