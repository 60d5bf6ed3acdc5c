//! Wiring: builds the stages from a validated [`Config`] and runs them until shutdown.
//!
//! ```text
//! sources ─▶ parse ─▶ fan-out ─┬─▶ archive (retention)           durable: commits, then acks
//!                              └─▶ analyzer ─▶ alerts (alerting)  durable: SQLite, then acks
//! outbox (alerting) ─▶ SMTP or .eml files        dashboards (HTTP) reads metrics and stores
//! ```
//! Every edge is a bounded channel: when the archive falls behind, the fan-out waits, the
//! parse stage waits, and the sources stop reading — backpressure, never unbounded memory.
//! A source's checkpoint advances only when both durable branches acknowledged its batch.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use collector::source::demo::{DemoSource, Scenario};
use collector::source::{CheckpointStore, GlobSource, SourceOptions, run_source};
use collector::{Batch, DeadLetter, Event, Health, Normalizer, PipelineMetrics, RawRecord};
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, SourceKind};
use crate::datadir::DataDir;

/// What a finished run reports.
#[derive(Debug)]
pub(crate) struct RunSummary {
    pub(crate) failures: Vec<String>,
}

/// Runs the whole stack until `shutdown` fires (signal, `--for`) or a stage fails.
pub(crate) async fn run(
    config: Config,
    data: DataDir,
    shutdown: CancellationToken,
    banner: impl FnOnce(&std::net::SocketAddr),
) -> anyhow::Result<RunSummary> {
    let mut registry = Registry::default();
    let metrics = PipelineMetrics::register(&mut registry);
    let archive_metrics = retention::ArchiveMetrics::register(&mut registry);
    let alerting_metrics = alerting::AlertingMetrics::register(&mut registry);
    let reload_metrics = crate::reload::ReloadMetrics::register(&mut registry);
    let health = Health::default();
    // Scale-out seam (roles.rs): a collector hands its parsed batches to Kafka, and the
    // archive, analyzer and alert stages run in other processes (`vigie run --role …`).
    let publishing = crate::roles::collector_publishing(&config, &mut registry)?;
    let in_process = publishing.is_none();

    // Stores first: a refusal (locked, newer format, unwritable) stops us before any task runs.
    let checkpoints = CheckpointStore::open(&data.join("state.sqlite")).context("opening the checkpoint store")?;
    let (archive, recorder, maintenance) = open_archive(&config, &data)?;
    let alerts_db = data.join("alerting.sqlite");
    // The key of the signed links in emails (approve a notice, acknowledge an alert).
    let signing_key = crate::roles::signing_key(&data)?;
    let policy = crate::roles::alert_policy(&config, signing_key.clone());
    let store = alerting::AlertStore::open(&alerts_db, policy.clone()).context("opening the alert store")?;
    let notices = alerting::Notices::open(&alerts_db, config.notice_policy.clone(), signing_key.clone())
        .context("opening the outage notices")?;
    let incidents =
        alerting::Incidents::open(&alerts_db, config.incident_policy.clone()).context("opening the incidents")?;
    let notices_store = alerting::AlertStore::open(&alerts_db, policy.clone()).context("opening the alert store")?;
    // The dashboards' own connections: a page reads and approves without the pipeline's lock.
    let desk_notices = alerting::Notices::open(&alerts_db, config.notice_policy.clone(), signing_key.clone())
        .context("opening the outage notices")?;
    let desk_incidents =
        alerting::Incidents::open(&alerts_db, config.incident_policy.clone()).context("opening the incidents")?;
    let dashboard_alerts = alerting::AlertStore::open(&alerts_db, policy).context("opening the alert store")?;
    let transport = match &config.alerting.smtp {
        Some(smtp) => alerting::Transport::Smtp {
            host: smtp.host.clone(),
            port: smtp.port,
            starttls: smtp.starttls,
            username: smtp.username.clone(),
            password_env: smtp.password_env.clone(),
        },
        None => alerting::Transport::Directory(data.join("outbox")),
    };
    let rules = Arc::new(
        analyzer::RuleSet::load_dir(&config.rules_dir)
            .with_context(|| format!("loading the rules in {}", config.rules_dir.display()))?,
    );
    tracing::info!(rules = rules.len(), dir = %config.rules_dir.display(), "rules loaded");
    // Metrics: scrapers, probes and watches → series store → saturation rules → alerts;
    // availability probes → outages (persisted) → the month's availability.
    let series_store = series::SeriesStore::open(&data.join("series.sqlite"), series::StoreConfig::default())
        .context("opening the series store")?;
    let outage_store = series::OutageStore::open(&data.join("outages.sqlite")).context("opening the outage store")?;
    let saturation = Arc::new(
        analyzer::SaturationRules::load_dir(&config.rules_dir)
            .with_context(|| format!("loading the saturation rules in {}", config.rules_dir.display()))?,
    );
    let metrics_stage = series::MetricsStage::new(series_store, outage_store);
    let mut normalizer = Normalizer::new(
        config.time_zone.clone(),
        DeadLetter::new(&data.join("deadletter")).context("creating the dead-letter directory")?,
        metrics.clone(),
    )
    .with_enricher(config.enricher.clone());

    // The emergency block list: fed by the analyzer, read by the web server, written for nftables.
    let mut allow = analyzer::parse_allow_list(&config.block_allow).context("reading blocklist.allow")?;
    if let Some(schools) = config.enricher.schools() {
        // Pupils and teachers reach the ENT through their school's networks: never block a school.
        let networks: Vec<String> = schools.iter().flat_map(|s| s.networks.iter().map(|n| n.to_string())).collect();
        allow.extend(analyzer::parse_allow_list(&networks).context("school networks")?);
    }
    let blocklist = Arc::new(std::sync::Mutex::new(analyzer::BlockList::new(
        analyzer::BlockPolicy { time_zone: config.time_zone.clone(), ..analyzer::BlockPolicy::default() },
        allow,
    )));

    let cap = config.channel_capacity;
    let (raw_tx, raw_rx) = mpsc::channel::<Batch<RawRecord>>(cap);
    let (event_tx, event_rx) = mpsc::channel::<Batch<Event>>(cap);
    let (archive_tx, archive_rx) = mpsc::channel::<Batch<Event>>(cap);
    let (analyze_tx, analyze_rx) = mpsc::channel::<Batch<Event>>(cap);
    let (stats_tx, stats_rx) = mpsc::channel::<Batch<Event>>(cap);
    let (detect_tx, detect_rx) = mpsc::channel::<Batch<analyzer::Detection>>(cap);
    // Saturation detections join the analyzer's on the way to the alert store.
    let metrics_detect_tx = detect_tx.clone();

    let tracker = TaskTracker::new();
    // Sources stop on shutdown; every later stage stops when its input closes, so nothing
    // accepted is left in a channel. `fatal` lets any stage end the run on an error.
    let fatal = shutdown.child_token();
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let spawn = |name: String, fut: std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>>| {
        let health = health.clone();
        let failures = failures.clone();
        let fatal = fatal.clone();
        health.expect(&name);
        tracker.spawn(async move {
            health.set(&name, true);
            let result = fut.await;
            health.set(&name, false);
            if let Err(e) = result {
                tracing::error!(task = %name, error = format!("{e:#}"), "task failed; stopping");
                failures.lock().unwrap_or_else(|e| e.into_inner()).push(format!("{name}: {e:#}"));
                fatal.cancel();
            }
        });
    };

    let options = SourceOptions {
        batch_size: config.batch_size,
        max_in_flight: config.max_in_flight,
        idle_wait: Duration::from_millis(100),
    };
    for source in &config.sources {
        let (name, tx, store, m, stop, options) = (
            format!("source:{}", source.id),
            raw_tx.clone(),
            checkpoints.clone(),
            metrics.clone(),
            fatal.clone(),
            options.clone(),
        );
        match &source.kind {
            SourceKind::File { path, format, start_at_end } => {
                normalizer.add_source(&source.id, collector::parse::Parser::new(format)?);
                // Every file source goes through GlobSource, even for one path: it numbers the
                // files and their rotations into the event ids, so a rotated file never reuses
                // the ids (and so never replaces the archived records) of the one before it.
                let pattern = path.to_str().with_context(|| format!("source {}: path is not UTF-8", source.id))?;
                let src = GlobSource::new(source.id.as_str(), pattern)?.start_at_end(*start_at_end);
                spawn(name, Box::pin(async move { Ok(run_source(src, store, tx, options, m, stop).await?) }));
            }
            SourceKind::Syslog { listen, format } => {
                normalizer.add_source(&source.id, collector::parse::Parser::new(format)?);
                let src = collector::source::SyslogSource::bind(source.id.as_str(), listen)
                    .await
                    .with_context(|| format!("starting syslog source {}", source.id))?;
                spawn(name, Box::pin(async move { Ok(run_source(src, store, tx, options, m, stop).await?) }));
            }
            SourceKind::Demo { stream, rate } => {
                let format = match stream {
                    collector::source::demo::DemoStream::Web => {
                        collector::parse::Format::ApacheCustom(collector::source::demo::WEB_LOG_FORMAT.into())
                    }
                    collector::source::demo::DemoStream::Firewall => collector::parse::Format::Netfilter,
                };
                normalizer.add_source(&source.id, collector::parse::Parser::new(&format)?);
                let src = DemoSource::new(source.id.as_str(), *stream, *rate, Scenario::default());
                spawn(name, Box::pin(async move { Ok(run_source(src, store, tx, options, m, stop).await?) }));
            }
        }
    }
    // A metrics-only configuration has no event source: hold the raw channel open until shutdown,
    // or parse, fan-out, analyzer and archive would see their input closed and stop at once (and
    // /readyz would never answer ready); at shutdown they drain and stop as usual.
    let idle_raw = if config.sources.is_empty() {
        Some(raw_tx)
    } else {
        drop(raw_tx);
        None
    };

    if config.geoip_reload {
        let (enricher, stop) = (config.enricher.clone(), fatal.clone());
        spawn(
            "geoip-reload".into(),
            Box::pin(async move {
                collector::run_geoip_reloader(enricher, Duration::from_secs(60), stop).await;
                Ok(())
            }),
        );
    }
    spawn("parse".into(), Box::pin(async move { Ok(collector::run_normalize(normalizer, raw_rx, event_tx).await?) }));
    if let Some(publishing) = publishing {
        spawn("kafka-publish".into(), Box::pin(publishing.run(event_rx)));
    } else {
        let m = metrics.clone();
        spawn(
            "fan-out".into(),
            Box::pin(fan_out(
                event_rx,
                [("archive", archive_tx), ("analyzer", analyze_tx), ("statistics", stats_tx)],
                m,
            )),
        );
    }
    if in_process {
        let m = metrics.clone();
        let (publish, watched) = tokio::sync::watch::channel(rules);
        spawn("analyzer".into(), Box::pin(analyze(watched, analyze_rx, detect_tx, blocklist.clone(), m)));
        let writer = NftWriter {
            path: config.nftables_file.clone(),
            table: config.nft_table.clone(),
            set: config.nft_set.clone(),
        };
        let (list, stop) = (blocklist.clone(), fatal.clone());
        spawn("blocklist".into(), Box::pin(write_blocklist(list, writer, stop)));
        let (dir, stop) = (config.rules_dir.clone(), fatal.clone());
        spawn(
            "rule-watch".into(),
            Box::pin(crate::reload::watch_rules(dir, Duration::from_secs(2), publish, reload_metrics, stop)),
        );
    }
    if in_process {
        // The archive and the alert store end when their input closes, not on shutdown: they
        // must write everything the sources handed out.
        let never = CancellationToken::new();
        let interval = config.commit_interval;
        let m = archive_metrics.clone();
        spawn(
            "archive".into(),
            Box::pin(async move {
                retention::run_archive(archive, recorder, maintenance, archive_rx, interval, m, never).await?;
                Ok(())
            }),
        );
    }
    if in_process {
        // CCTP 4.3.3 statistics per school and user category, durable like the other branches.
        let stats = dashboards::Statistics::open(&data.join("statistics.sqlite"), config.time_zone.clone())
            .context("opening the statistics")?;
        let m = metrics.clone();
        spawn("statistics".into(), Box::pin(count_statistics(stats, stats_rx, m)));
    }
    if in_process {
        let never = CancellationToken::new();
        let m = alerting_metrics.clone();
        spawn("alerts".into(), Box::pin(async move { Ok(alerting::run_alerts(store, detect_rx, m, never).await?) }));
    }
    if in_process {
        let stop = fatal.clone();
        let m = alerting_metrics.clone();
        let db = alerts_db.clone();
        spawn("outbox".into(), Box::pin(async move { Ok(alerting::run_outbox(db, transport, m, stop).await?) }));
    }
    // Outage notices and incident deadlines. Availability probes send each service's
    // `OutageChange` on `outage_tx` (bounded: a probe waits rather than losing a change).
    let (outage_tx, outage_rx) = mpsc::channel::<alerting::ServiceOutage>(64);
    {
        let stop = fatal.clone();
        spawn(
            "notices".into(),
            Box::pin(
                async move { Ok(alerting::run_notices(notices, incidents, notices_store, outage_rx, stop).await?) },
            ),
        );
    }

    {
        let mut metrics_config = config.metrics.config.clone();
        if config.metrics.demo {
            // The demo's ENT answers 503 during the scenario's outage: the probes see it for real.
            let ent = collector::DemoEnt::bind(Scenario::default()).await.context("starting the demo ENT")?;
            let base = ent.base_url()?;
            metrics_config.probes.extend(config.metrics.demo_probes(&base));
            let stop = fatal.clone();
            spawn("demo-ent".into(), Box::pin(async move { Ok(ent.serve(stop).await?) }));
        }
        // Probe outages (open, closed) go to the outage notices and incidents.
        let (probe_changes, outages, stop) = (metrics_stage.subscribe(), outage_tx.clone(), fatal.clone());
        spawn("probe-outages".into(), Box::pin(forward_outages(probe_changes, outages, stop)));
        // Saturation rules are read at start; a rule reload applies to event rules only.
        let (_fixed, saturation_rules) = tokio::sync::watch::channel(saturation);
        let (stage, tx, stop) = (metrics_stage.clone(), metrics_detect_tx, fatal.clone());
        spawn(
            "metrics".into(),
            Box::pin(async move { Ok(stage.run(metrics_config, saturation_rules, tx, stop).await?) }),
        );
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}; choose another address with --listen", config.listen))?;
    let local = listener.local_addr()?;
    let mut users = dashboards::UserStore::open(&data.join("users.sqlite")).context("opening the account store")?;
    let demo_accounts =
        if config.demo_accounts { users.reset_demo_accounts(jiff::Timestamp::now())? } else { Vec::new() };
    let state = dashboards::AppState::new(dashboards::AppInputs {
        registry: Arc::new(registry),
        health: health.clone(),
        metrics: metrics.clone(),
        alerts: dashboard_alerts,
        blocklist: blocklist.clone(),
        time_zone: config.time_zone.clone(),
        users,
        settings: config.server.clone(),
        statistics: if in_process {
            Some(dashboards::StatsReader::open(&data.join("statistics.sqlite")).context("opening the statistics")?)
        } else {
            None
        },
        panels: dashboards::load_panels(config.server.panels_dir.as_deref()).context("reading the panel files")?,
        services: crate::services::wire(
            data.path(),
            (desk_notices, desk_incidents),
            config.archive_key.as_deref(),
            &metrics_stage,
            &config.time_zone,
        )?,
    });
    {
        let stop = fatal.clone();
        spawn("dashboards".into(), Box::pin(async move { Ok(dashboards::serve(listener, state, stop).await?) }));
    }
    tracker.close();
    banner(&local);
    if !demo_accounts.is_empty() {
        crate::user_cmd::print_demo_accounts(&demo_accounts);
    }

    fatal.cancelled().await;
    drop(idle_raw);
    drop(outage_tx);
    tracing::info!("shutting down: sources stop, then every stage drains and commits");
    tracker.wait().await;
    let failures = failures.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(RunSummary { failures })
}

/// The archive, its route table and, when the configuration names a signing key, its sealing
/// and purge schedule (they run inside the archive stage, its only writer, at start and then
/// hourly; both need the key: the purge certifies every deletion).
pub(crate) fn open_archive(
    config: &Config,
    data: &DataDir,
) -> anyhow::Result<(retention::Archive, retention::Recorder, Option<retention::Maintenance>)> {
    let mut archive = retention::Archive::open(&data.join("archive")).context("opening the archive")?;
    let recorder = retention::Recorder::new(match &config.archive_routes {
        Some(path) => retention::RouteTable::load(path)?,
        None => retention::RouteTable::default(),
    });
    let maintenance = match &config.archive_key {
        Some(path) => {
            archive.set_key(retention::ArchiveKey::load(path)?);
            Some(retention::Maintenance {
                keep_days: config.keep_days,
                grace: jiff::SignedDuration::try_from(config.seal_after).context("retention.seal_after")?,
                every: Duration::from_secs(3600),
            })
        }
        None => {
            tracing::warn!("no [retention] signing_key: archive days are neither sealed nor purged");
            None
        }
    };
    Ok((archive, recorder, maintenance))
}

/// Sends every batch to each durable branch; each holds its own clone of the ack token.
async fn fan_out<const N: usize>(
    mut input: mpsc::Receiver<Batch<Event>>,
    branches: [(&'static str, mpsc::Sender<Batch<Event>>); N],
    metrics: PipelineMetrics,
) -> anyhow::Result<()> {
    while let Some(batch) = input.recv().await {
        metrics.queue_depth("fan-out", input.len());
        for (name, branch) in &branches {
            metrics.queue_depth(name, branch.max_capacity() - branch.capacity());
        }
        let Some(((last_name, last), rest)) = branches.split_last() else {
            anyhow::bail!("the fan-out has no branch");
        };
        for (name, branch) in rest {
            let copy = Batch::new(batch.items.clone(), batch.ack.clone());
            // A send that fails drops its batch unacknowledged, which fails it at the source.
            if branch.send(copy).await.is_err() {
                anyhow::bail!("the {name} stage stopped accepting events");
            }
        }
        if last.send(batch).await.is_err() {
            anyhow::bail!("the {last_name} stage stopped accepting events");
        }
    }
    Ok(())
}

/// Counts every event into the statistics; a batch is acknowledged once its counts are written.
/// Events a source reads again after a restart are recognised by their position and not counted
/// twice (see [`dashboards::Statistics`]).
async fn count_statistics(
    stats: dashboards::Statistics,
    mut input: mpsc::Receiver<Batch<Event>>,
    metrics: PipelineMetrics,
) -> anyhow::Result<()> {
    let stats = Arc::new(std::sync::Mutex::new(stats));
    while let Some(batch) = input.recv().await {
        metrics.stage_in("statistics", batch.items.len());
        let stats = stats.clone();
        let Batch { items, ack } = batch;
        let (written, replayed) = tokio::task::spawn_blocking(move || {
            let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
            let before = s.replayed();
            for e in &items {
                s.observe(e);
            }
            (s.flush(), s.replayed() - before)
        })
        .await?;
        if replayed > 0 {
            tracing::info!(events = replayed, "statistics: events read again after a restart, already counted");
        }
        match written {
            Ok(()) => ack.ack(),
            Err(e) => {
                // The batch fails at its source, which stops and reads it again on restart:
                // nothing is lost. This stage stops too: counting the next batches would write
                // positions past the failed one, which would then look counted.
                ack.fail();
                return Err(anyhow::Error::new(e).context("cannot write the statistics"));
            }
        }
    }
    Ok(())
}

/// The service the availability probes watch, as the notices name it.
const ENT_SERVICE: &str = "ENT";

/// Merges the availability probes' outages into the ENT's: down from the first probe's
/// outage start while any probe is down, back up when the last one recovers.
#[derive(Debug, Default)]
struct EntOutage {
    /// Probes down now, with their outage's start.
    down: std::collections::BTreeMap<String, jiff::Timestamp>,
    /// When the ENT's current outage started.
    start: Option<jiff::Timestamp>,
}

impl EntOutage {
    fn apply(&mut self, change: series::ProbeOutageChange) -> Option<analyzer::OutageChange> {
        match change.change {
            analyzer::OutageChange::Opened { start } => {
                self.down.insert(change.probe, start);
                if self.start.is_none() {
                    self.start = Some(start);
                    return Some(analyzer::OutageChange::Opened { start });
                }
                None
            }
            analyzer::OutageChange::Closed { end, .. } => {
                self.down.remove(&change.probe);
                match (self.down.is_empty(), self.start) {
                    (true, Some(start)) => {
                        self.start = None;
                        Some(analyzer::OutageChange::Closed { start, end: end.max(start) })
                    }
                    _ => None,
                }
            }
        }
    }
}

/// Hands the ENT's outages, merged from every availability probe, to the notices stage.
async fn forward_outages(
    mut changes: tokio::sync::broadcast::Receiver<series::ProbeOutageChange>,
    outages: mpsc::Sender<alerting::ServiceOutage>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut ent = EntOutage::default();
    loop {
        let change = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            c = changes.recv() => c,
        };
        match change {
            Ok(c) => {
                let Some(merged) = ent.apply(c) else { continue };
                if outages.send((ENT_SERVICE.to_owned(), merged)).await.is_err() {
                    return Ok(());
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::error!(missed = n, "outage changes were missed; the notices may lag behind the probes");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
        }
    }
}

/// Runs the rules over every event; detections travel on with the batch's token.
async fn analyze(
    mut rules: tokio::sync::watch::Receiver<Arc<analyzer::RuleSet>>,
    mut input: mpsc::Receiver<Batch<Event>>,
    output: mpsc::Sender<Batch<analyzer::Detection>>,
    blocklist: Arc<std::sync::Mutex<analyzer::BlockList>>,
    metrics: PipelineMetrics,
) -> anyhow::Result<()> {
    let mut engine = analyzer::Engine::new(rules.borrow_and_update().clone());
    while let Some(batch) = input.recv().await {
        if rules.has_changed().unwrap_or(false) {
            // Windows of rules whose id did not change are kept.
            engine.replace_rules(rules.borrow_and_update().clone());
        }
        metrics.stage_in("analyzer", batch.items.len());
        let detections: Vec<_> = batch.items.iter().flat_map(|e| engine.observe(e)).collect();
        metrics.stage_out("analyzer", detections.len());
        if !detections.is_empty() {
            let mut list = blocklist.lock().unwrap_or_else(|e| e.into_inner());
            for d in &detections {
                list.add(d);
            }
        }
        if output.send(Batch::new(detections, batch.ack)).await.is_err() {
            anyhow::bail!("the alert store stopped accepting detections");
        }
    }
    Ok(())
}

/// Where the nftables rendering of the block list goes.
#[derive(Debug)]
struct NftWriter {
    path: std::path::PathBuf,
    table: String,
    set: String,
}

impl NftWriter {
    /// Writes the file if its content changed: to a temporary file, then renamed, so the
    /// firewall never loads half a file.
    fn write(&self, list: &analyzer::BlockList, last: &mut String) -> anyhow::Result<()> {
        let now = jiff::Timestamp::now();
        let text = list.render_nftables(now, &self.set, &self.table)?;
        // The header carries the time; compare what follows it.
        let body = text.split_once('\n').map_or(text.as_str(), |(_, b)| b);
        if body == last {
            return Ok(());
        }
        let tmp = self.path.with_extension("nft.tmp");
        std::fs::write(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path).with_context(|| format!("writing {}", self.path.display()))?;
        body.clone_into(last);
        Ok(())
    }
}

/// Expires old entries and rewrites the nftables file every 10 s, and once more at shutdown.
async fn write_blocklist(
    list: Arc<std::sync::Mutex<analyzer::BlockList>>,
    writer: NftWriter,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut last = String::from("\0");
    loop {
        let stop = tokio::select! {
            () = cancel.cancelled() => true,
            () = tokio::time::sleep(Duration::from_secs(10)) => false,
        };
        {
            let mut list = list.lock().unwrap_or_else(|e| e.into_inner());
            list.expire(jiff::Timestamp::now());
            writer.write(&list, &mut last)?;
        }
        if stop {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Grafana dashboard shipped for sites with Prometheus queries only metrics Vigie
    /// exports, and takes rates of counters only.
    #[test]
    fn the_grafana_dashboard_queries_metrics_vigie_exports() {
        let mut registry = Registry::default();
        // Labelled families appear once a label set is used, as in a running Vigie.
        let pipeline = PipelineMetrics::register(&mut registry);
        pipeline.source_records("web", 1);
        pipeline.parse_failure("web", "syntax");
        pipeline.stage_in("archive", 1);
        pipeline.stage_out("archive", 1);
        pipeline.queue_depth("archive", 0);
        pipeline.source_lag("web", 1);
        retention::ArchiveMetrics::register(&mut registry);
        alerting::AlertingMetrics::register(&mut registry);
        crate::reload::ReloadMetrics::register(&mut registry);
        bus::BusMetrics::register(&mut registry).lag("vigie-archivers", "vigie.events", 0);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let families: std::collections::HashMap<&str, &str> =
            text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split_once(' ')).collect();
        let json: serde_json::Value =
            serde_json::from_str(include_str!("../dashboards/grafana/vigie.json")).expect("valid JSON");
        let mut checked = 0;
        for panel in json["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                for (at, _) in expr.match_indices("vigie_") {
                    let name: String =
                        expr[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    let (family, counter) = match name.strip_suffix("_total") {
                        Some(f) => (f, true),
                        None => (name.as_str(), false),
                    };
                    let kind =
                        families.get(family).unwrap_or_else(|| panic!("{name} is not exported ({expr}):\n{text}"));
                    assert_eq!(counter, *kind == "counter", "{name} is a {kind} ({expr})");
                    let before = &expr[..at];
                    if before.ends_with("rate(") || before.ends_with("increase(") {
                        assert_eq!(*kind, "counter", "rate of a {kind}: {expr}");
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked >= 12, "{checked} queries checked");
    }

    fn change(probe: &str, c: analyzer::OutageChange) -> series::ProbeOutageChange {
        series::ProbeOutageChange { probe: probe.into(), change: c }
    }

    #[test]
    fn overlapping_probe_outages_make_one_ent_outage() {
        let t = |m: i64| jiff::Timestamp::from_second(1_750_000_000 + m * 60).unwrap();
        let (opened, closed) = (
            |s| analyzer::OutageChange::Opened { start: s },
            |s, e| analyzer::OutageChange::Closed { start: s, end: e },
        );
        let mut ent = EntOutage::default();
        assert_eq!(ent.apply(change("page", opened(t(0)))), Some(opened(t(0))));
        assert_eq!(ent.apply(change("login", opened(t(2)))), None, "already down");
        assert_eq!(ent.apply(change("page", closed(t(0), t(5)))), None, "login is still down");
        assert_eq!(ent.apply(change("login", closed(t(2), t(9)))), Some(closed(t(0), t(9))));
        // A later outage is a new one.
        assert_eq!(ent.apply(change("page", opened(t(30)))), Some(opened(t(30))));
        // A probe that closes without having opened (a restart) closes nothing that is not open.
        let mut fresh = EntOutage::default();
        assert_eq!(fresh.apply(change("page", closed(t(0), t(1)))), None);
    }
}
