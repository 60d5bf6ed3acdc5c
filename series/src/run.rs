//! The metrics stage of `vigie run`: scrapers and probes on their own interval and timeout,
//! started staggered; every sample into the series store; probe results of availability probes
//! into an outage tracker, whose outages are persisted and broadcast; the saturation rules
//! evaluated over the store, their detections sent down the alert path.
//!
//! ```text
//! scrape/probe tasks ─▶ series store ─▶ saturation rules ─▶ detections (alerts)
//!        └─ availability probes ─▶ OutageTracker ─▶ outages.sqlite + broadcast (alerting)
//! ```

use std::sync::Arc;
use std::time::Duration;

use analyzer::{Detection, OutageTracker, SaturationEngine, SaturationRules, SeriesSource};
use collector::{AckToken, Batch, Probe, Target};
use jiff::Timestamp;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::outages::{OutageStore, ProbeOutageChange};
use crate::store::{SeriesError, SeriesStore};

/// One scraped target.
#[derive(Debug, Clone)]
pub struct ScrapeTarget {
    pub target: Target,
    pub interval: Duration,
    pub timeout: Duration,
}

/// One probe with its schedule.
#[derive(Debug, Clone)]
pub struct ProbeSchedule {
    pub probe: Probe,
    pub interval: Duration,
    /// Whether its failures are outages of the ENT (counted against the 21 h window).
    pub availability: bool,
    /// Consecutive failures that open an outage.
    pub fail_threshold: u32,
}

/// One ClamAV server to watch.
#[derive(Debug, Clone)]
pub struct ClamavWatch {
    pub server: String,
    pub source: collector::watch::ClamavSource,
    /// Signatures older than this are outdated (`antivirus.signatures-outdated`).
    pub max_age: Duration,
}

/// What the metrics stage runs.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    pub scrapes: Vec<ScrapeTarget>,
    pub probes: Vec<ProbeSchedule>,
    pub backups: Vec<collector::watch::BackupWatch>,
    pub clamav: Vec<ClamavWatch>,
    /// How often backups and ClamAV are checked.
    pub watch_every: Duration,
    /// The time zone clamd and freshclam write their dates in.
    pub time_zone: jiff::tz::TimeZone,
    /// How often the saturation rules are evaluated.
    pub evaluate_every: Duration,
    /// How often the store's heads are written to disk.
    pub flush_every: Duration,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            scrapes: Vec::new(),
            probes: Vec::new(),
            backups: Vec::new(),
            clamav: Vec::new(),
            watch_every: Duration::from_secs(300),
            time_zone: jiff::tz::TimeZone::UTC,
            evaluate_every: Duration::from_secs(30),
            flush_every: Duration::from_secs(10),
        }
    }
}

/// The stage: its stores and the outage broadcast. Build it, hand clones of the stores and
/// [`MetricsStage::subscribe`] receivers to the dashboards and alerting, then [`MetricsStage::run`].
#[derive(Debug, Clone)]
pub struct MetricsStage {
    store: SeriesStore,
    outages: OutageStore,
    changes: broadcast::Sender<ProbeOutageChange>,
    backups: Arc<std::sync::Mutex<Vec<collector::watch::BackupReport>>>,
}

/// Outage changes are rare (a few a day); 64 pending is plenty for a slow receiver, and a
/// receiver that lags anyway is told how many it missed (broadcast's `Lagged`), never blocks us.
const CHANGES_CAPACITY: usize = 64;

impl SeriesSource for SeriesStore {
    fn samples(
        &self,
        name: &str,
        matchers: &[(String, String)],
        from_ms: i64,
        to_ms: i64,
    ) -> Vec<(analyzer::Labels, Vec<analyzer::Point>)> {
        match self.range(name, matchers, from_ms, to_ms) {
            Ok(series) => series
                .into_iter()
                .map(|r| (r.series.labels, r.points.into_iter().map(|p| (p.t, p.v)).collect()))
                .collect(),
            Err(error) => {
                tracing::error!(%error, series = name, "series query failed");
                Vec::new()
            }
        }
    }
}

impl MetricsStage {
    pub fn new(store: SeriesStore, outages: OutageStore) -> Self {
        let (changes, _) = broadcast::channel(CHANGES_CAPACITY);
        MetricsStage { store, outages, changes, backups: Arc::default() }
    }

    /// The latest report of every watched backup location (per-day status), for the dashboards.
    pub fn backup_reports(&self) -> Vec<collector::watch::BackupReport> {
        self.backups.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn store(&self) -> &SeriesStore {
        &self.store
    }

    pub fn outages(&self) -> &OutageStore {
        &self.outages
    }

    /// Every outage opened or closed from now on, with its probe's name.
    pub fn subscribe(&self) -> broadcast::Receiver<ProbeOutageChange> {
        self.changes.subscribe()
    }

    /// Runs until `stop` fires, then writes the store one last time. `rules` may be replaced
    /// while running (a reload). Saturation detections go to `detections` with a detached
    /// acknowledgement: metrics are re-measured, nothing is replayed from a checkpoint.
    pub async fn run(
        self,
        config: MetricsConfig,
        rules: watch::Receiver<Arc<SaturationRules>>,
        detections: mpsc::Sender<Batch<Detection>>,
        stop: CancellationToken,
    ) -> Result<(), SeriesError> {
        let tasks = TaskTracker::new();
        let n = config.scrapes.len() + config.probes.len();
        let scrapes = config.scrapes.len();
        for (i, scrape) in config.scrapes.into_iter().enumerate() {
            let offset = stagger(scrape.interval, i, n);
            let (store, stop) = (self.store.clone(), stop.clone());
            tasks.spawn(scrape_loop(scrape, offset, store, stop));
        }
        for (i, probe) in config.probes.into_iter().enumerate() {
            let offset = stagger(probe.interval, scrapes + i, n);
            let stage = self.clone();
            let stop = stop.clone();
            tasks.spawn(async move { stage.probe_loop(probe, offset, stop).await });
        }
        if !config.backups.is_empty() || !config.clamav.is_empty() {
            let (stage, stop) = (self.clone(), stop.clone());
            let (backups, clamav, every, tz) = (config.backups, config.clamav, config.watch_every, config.time_zone);
            tasks.spawn(async move { stage.watch_loop(backups, clamav, every, tz, stop).await });
        }
        tasks.close();
        let mut evaluate = tokio::time::interval(config.evaluate_every);
        let mut flush = tokio::time::interval(config.flush_every);
        let mut compact = tokio::time::interval(Duration::from_secs(3600));
        for t in [&mut evaluate, &mut flush, &mut compact] {
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        let mut engine = SaturationEngine::new(rules.borrow().clone());
        let mut rules = rules;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = evaluate.tick() => {
                    if rules.has_changed().unwrap_or(false) {
                        engine.replace_rules(rules.borrow_and_update().clone());
                    }
                    let store = self.store.clone();
                    let now = Timestamp::now();
                    let (back, found) = tokio::task::spawn_blocking(move || {
                        let found = engine.evaluate(&store, now);
                        (engine, found)
                    })
                    .await
                    .map_err(|e| SeriesError::Task(format!("evaluation task failed: {e}")))?;
                    engine = back;
                    if !found.is_empty() {
                        tracing::info!(detections = found.len(), "saturation rules fired");
                        if detections.send(Batch::new(found, AckToken::detached())).await.is_err() {
                            tracing::warn!("the alert store is gone; saturation detections are no longer delivered");
                        }
                    }
                }
                _ = flush.tick() => {
                    let store = self.store.clone();
                    blocking(move || store.flush()).await?;
                }
                _ = compact.tick() => {
                    let store = self.store.clone();
                    let now = Timestamp::now().as_millisecond();
                    let (chunks, rollups) = blocking(move || store.compact(now)).await?;
                    tracing::debug!(chunks, rollups, "series store compacted");
                }
            }
        }
        tasks.wait().await;
        let store = self.store.clone();
        blocking(move || store.flush()).await?;
        Ok(())
    }

    async fn watch_loop(
        self,
        backups: Vec<collector::watch::BackupWatch>,
        clamav: Vec<ClamavWatch>,
        every: Duration,
        tz: jiff::tz::TimeZone,
        stop: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let now = Timestamp::now();
            let watches = backups.clone();
            let reports = tokio::task::spawn_blocking(move || {
                watches.iter().map(|w| collector::watch::check_backups(w, now)).collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            let mut samples: Vec<collector::Sample> = reports.iter().flat_map(|r| r.samples()).collect();
            *self.backups.lock().unwrap_or_else(|e| e.into_inner()) = reports;
            for c in &clamav {
                let status =
                    collector::watch::check_clamav(&c.server, &c.source, c.max_age, &tz, Duration::from_secs(10)).await;
                if let Some(error) = &status.error {
                    tracing::warn!(server = %c.server, %error, "clamav watch failed");
                }
                samples.extend(status.samples(now));
            }
            let store = self.store.clone();
            let t = now.as_millisecond();
            if let Err(error) = blocking(move || {
                store.append_samples(&samples, t, &[]);
                Ok(())
            })
            .await
            {
                tracing::error!(%error, "cannot store watch samples");
            }
        }
    }

    async fn probe_loop(self, schedule: ProbeSchedule, offset: Duration, stop: CancellationToken) {
        let mut tracker = OutageTracker::new(schedule.fail_threshold);
        let mut first = true;
        let name = schedule.probe.name.clone();
        if !sleep_or_stop(offset, &stop).await {
            return;
        }
        let mut ticker = tokio::time::interval(schedule.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let result = collector::run_probe(&schedule.probe).await;
            let store = self.store.clone();
            let (samples, t) = (result.samples.clone(), result.at.as_millisecond());
            if let Err(error) = blocking(move || {
                store.append_samples(&samples, t, &[]);
                Ok(())
            })
            .await
            {
                tracing::error!(%error, probe = %name, "cannot store probe samples");
            }
            if !schedule.availability {
                continue;
            }
            let mut changes = Vec::new();
            if first && result.ok {
                // An outage left open by a stop closes at the first success after the restart.
                let (outages, probe, at) = (self.outages.clone(), name.clone(), result.at);
                match blocking(move || outages.close_dangling(&probe, at)).await {
                    Ok(closed) => changes.extend(closed),
                    Err(error) => tracing::error!(%error, probe = %name, "cannot close the outage left open"),
                }
            }
            first = false;
            changes.extend(tracker.observe(result.at, result.ok));
            for change in changes {
                tracing::info!(probe = %name, ?change, error = ?result.error, "outage change");
                let (outages, probe) = (self.outages.clone(), name.clone());
                if let Err(error) = blocking(move || outages.record(&probe, &change)).await {
                    tracing::error!(%error, probe = %name, "cannot persist the outage");
                }
                // No receiver (alerting not connected) is not an error.
                let _ = self.changes.send(ProbeOutageChange { probe: name.clone(), change });
            }
        }
    }
}

async fn scrape_loop(scrape: ScrapeTarget, offset: Duration, store: SeriesStore, stop: CancellationToken) {
    if !sleep_or_stop(offset, &stop).await {
        return;
    }
    let mut ticker = tokio::time::interval(scrape.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let at = Timestamp::now().as_millisecond();
        let result = collector::scrape(&scrape.target, scrape.timeout).await;
        let store = store.clone();
        let outcome = blocking(move || {
            let target = vec![("target".to_owned(), result.target.clone())];
            store.append_samples(&result.samples, at, &target);
            store.append("up", &target, at, f64::from(u8::from(result.up)));
            store.append("scrape_duration_seconds", &target, at, result.duration.as_secs_f64());
            Ok(())
        })
        .await;
        if let Err(error) = outcome {
            tracing::error!(%error, target = %scrape.target.label(), "cannot store scraped samples");
        }
    }
}

/// Start offset of task `i` of `n`, spread over one interval so that targets are not all
/// scraped in the same second.
fn stagger(interval: Duration, i: usize, n: usize) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    interval.mul_f64(i as f64 / n as f64)
}

async fn sleep_or_stop(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = stop.cancelled() => false,
        () = tokio::time::sleep(d) => true,
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SeriesError> + Send + 'static,
) -> Result<T, SeriesError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| SeriesError::Task(format!("store task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_are_spread_over_the_interval() {
        let i = Duration::from_secs(60);
        assert_eq!(stagger(i, 0, 4), Duration::ZERO);
        assert_eq!(stagger(i, 1, 4), Duration::from_secs(15));
        assert_eq!(stagger(i, 3, 4), Duration::from_secs(45));
        assert_eq!(stagger(i, 0, 0), Duration::ZERO);
    }

    /// A web server whose status the test sets; returns its base URL.
    async fn server(status: Arc<std::sync::atomic::AtomicU16>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else { return };
                let code = status.load(std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let _ = s.read(&mut buf).await;
                    let reply = format!("HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
                    let _ = s.write_all(reply.as_bytes()).await;
                });
            }
        });
        base
    }

    #[tokio::test]
    async fn a_failing_probe_opens_then_closes_a_persisted_outage_and_alerts() {
        use std::sync::atomic::{AtomicU16, Ordering};
        let status = Arc::new(AtomicU16::new(200));
        let base = server(status.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let outages = OutageStore::open(&dir.path().join("outages.sqlite")).unwrap();
        let stage = MetricsStage::new(SeriesStore::in_memory(crate::StoreConfig::default()), outages.clone());
        let mut changes = stage.subscribe();
        let probe = Probe {
            name: "ent".into(),
            kind: collector::ProbeKind::Http(collector::HttpCheck {
                url: format!("{base}/"),
                expect_status: vec![],
                contains: None,
                ca_file: None,
            }),
            timeout: Duration::from_secs(5),
        };
        let config = MetricsConfig {
            probes: vec![ProbeSchedule {
                probe,
                interval: Duration::from_millis(100),
                availability: true,
                fail_threshold: 2,
            }],
            evaluate_every: Duration::from_millis(100),
            flush_every: Duration::from_millis(500),
            ..MetricsConfig::default()
        };
        let rules = SaturationRules::from_yaml(
            "t.yml",
            "version: 1\nrules:\n  - id: probe.down\n    kind: saturation\n    title: T\n    description: D\n    severity: critical\n    cctp_class: bloquant\n    series: probe_success\n    below: 1\n    offender: [probe]\n    suppress: 1h\n",
        )
        .unwrap();
        let (_keep, rules) = watch::channel(Arc::new(rules));
        let (tx, mut detections) = mpsc::channel(8);
        let stop = CancellationToken::new();
        let running = tokio::spawn(stage.clone().run(config, rules, tx, stop.clone()));

        let wait = Duration::from_secs(30);
        status.store(503, Ordering::SeqCst);
        let opened = tokio::time::timeout(wait, changes.recv()).await.expect("an outage opens").unwrap();
        assert_eq!(opened.probe, "ent");
        let analyzer::OutageChange::Opened { start } = opened.change else { panic!("{opened:?}") };
        let batch = tokio::time::timeout(wait, detections.recv()).await.expect("a detection").unwrap();
        assert_eq!(batch.items[0].rule, "probe.down");
        assert_eq!(batch.items[0].key, "probe=ent");
        status.store(200, Ordering::SeqCst);
        let closed = tokio::time::timeout(wait, changes.recv()).await.expect("the outage closes").unwrap();
        let analyzer::OutageChange::Closed { start: s, end } = closed.change else { panic!("{closed:?}") };
        assert_eq!(s, start);
        stop.cancel();
        running.await.unwrap().unwrap();
        let stored = outages.between(Timestamp::UNIX_EPOCH, Timestamp::MAX).unwrap();
        // Stored to the millisecond.
        let ms = |t: Timestamp| Timestamp::from_millisecond(t.as_millisecond()).unwrap();
        assert_eq!(stored, [crate::ProbeOutage { probe: "ent".into(), start: ms(start), end: Some(ms(end)) }]);
        // The probe's samples are in the store: successes and failures, with the status codes.
        let codes = stage.store().range("probe_http_status_code", &[], 0, i64::MAX / 2).unwrap();
        let seen: std::collections::BTreeSet<u64> = codes[0].points.iter().map(|p| p.v as u64).collect();
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), [200, 503]);
    }
}
