//! Rule reloads: on SIGHUP, or when a rule file in the rules directory changes.
//!
//! A reload compiles the whole directory first; a bad file is refused with its `file:line`
//! in the log and the rules already running keep running.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// Counts reloads by outcome (`applied`, `refused`).
#[derive(Clone, Debug, Default)]
pub(crate) struct ReloadMetrics(Family<ResultLabel, Counter>);

impl ReloadMetrics {
    pub(crate) fn register(registry: &mut Registry) -> ReloadMetrics {
        let m = ReloadMetrics::default();
        registry.register("vigie_rule_reloads", "Rule reloads, by outcome", m.0.clone());
        m
    }
}

/// The newest modification time of the rule files, or None if the directory is unreadable.
fn fingerprint(dir: &Path) -> Option<(SystemTime, usize)> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut count = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if matches!(path.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
            count += 1;
            if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
                newest = newest.max(modified);
            }
        }
    }
    Some((newest, count))
}

/// Watches `dir` (polling every `every`) and SIGHUP until `cancel`; publishes each rule set
/// that compiles. The directory's state is taken when this is called, so a change made after
/// the call and before the first poll is not missed.
pub(crate) fn watch_rules(
    dir: PathBuf,
    every: Duration,
    publish: watch::Sender<Arc<analyzer::RuleSet>>,
    metrics: ReloadMetrics,
    cancel: CancellationToken,
) -> impl std::future::Future<Output = anyhow::Result<()>> + Send {
    let seen = fingerprint(&dir);
    run(dir, every, seen, publish, metrics, cancel)
}

async fn run(
    dir: PathBuf,
    every: Duration,
    mut seen: Option<(SystemTime, usize)>,
    publish: watch::Sender<Arc<analyzer::RuleSet>>,
    metrics: ReloadMetrics,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        let reason = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            _ = hangup.recv() => "SIGHUP",
            () = tokio::time::sleep(every) => {
                let now = fingerprint(&dir);
                if now == seen { continue }
                seen = now;
                "a rule file changed"
            }
        };
        let load_dir = dir.clone();
        match tokio::task::spawn_blocking(move || analyzer::RuleSet::load_dir(&load_dir)).await? {
            Ok(rules) => {
                tracing::info!(reason, rules = rules.len(), dir = %dir.display(), "rules reloaded");
                metrics.0.get_or_create(&ResultLabel { result: "applied" }).inc();
                publish.send_replace(Arc::new(rules));
            }
            Err(e) => {
                tracing::error!(reason, error = %e, "rule reload refused; the previous rules keep running");
                metrics.0.get_or_create(&ResultLabel { result: "refused" }).inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = "version: 1\nrules:\n  - id: t.sig\n    kind: signature\n    title: Sonde\n    description: Une sonde.\n    severity: warning\n    cctp_class: securite_mineure\n    when:\n      - field: url.path\n        contains: ['/.env']\n    offender: [source.ip]\n    suppress: 1m\n";

    #[tokio::test]
    async fn a_changed_file_is_reloaded_and_a_bad_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yml");
        std::fs::write(&file, RULE).unwrap();
        let first = Arc::new(analyzer::RuleSet::load_dir(dir.path()).unwrap());

        let (tx, mut rx) = watch::channel(first);
        let cancel = CancellationToken::new();
        let metrics = ReloadMetrics::default();
        let task = tokio::spawn(watch_rules(
            dir.path().to_owned(),
            Duration::from_millis(20),
            tx,
            metrics.clone(),
            cancel.clone(),
        ));
        let count = |result| metrics.0.get_or_create(&ResultLabel { result }).get();

        // A broken edit is refused: counted, nothing published.
        std::fs::write(&file, "version: 1\nrules:\n  - id: [broken\n").unwrap();
        bump_mtime(&file, 10);
        tokio::time::timeout(Duration::from_secs(10), async {
            while count("refused") == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
        assert!(!rx.has_changed().unwrap(), "a refused reload must not replace the running rules");

        // Mended, plus a second file: published, with both rules.
        std::fs::write(&file, RULE).unwrap();
        std::fs::write(dir.path().join("b.yml"), RULE.replace("t.sig", "t.other")).unwrap();
        bump_mtime(&file, 20);
        tokio::time::timeout(Duration::from_secs(10), rx.changed()).await.unwrap().unwrap();
        assert_eq!(rx.borrow().len(), 2);
        assert_eq!(count("applied"), 1);
        cancel.cancel();
        task.await.unwrap().unwrap();
    }

    /// Moves a file's mtime forward so that coarse file-system clocks still see a change.
    fn bump_mtime(path: &Path, secs: u64) {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(secs)).unwrap();
    }
}
