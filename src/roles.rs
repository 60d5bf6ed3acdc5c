//! Scale-out roles: one `vigie run --role ROLE` process per role, joined by Kafka.
//!
//! ```text
//! collector ──events (keyed by source.ip)──▶ archiver  (group <prefix>.archiver) ─▶ archive
//!                                     └────▶ analyzer  (group <prefix>.analyzer) ──detections──▶ alerter ─▶ alerts, emails, web UI
//! ```
//! - `collector`: the embedded pipeline's sources and parse stage; its fan-out is replaced by
//!   the Kafka producer (the seam is in `pipeline.rs`). A file checkpoint advances only when
//!   the brokers acknowledged (acks=all) every event of the batch.
//! - `archiver`, `analyzer`, `alerter`: consumer-group members that commit offsets only
//!   after their own durable write (archive commit; the brokers' acknowledgement of the
//!   detections; the alert store's SQLite transaction).
//! - `all` (the default): everything in one process, without Kafka.
//!
//! Every role serves `/metrics`, `/healthz` and `/readyz` on `[server] listen`; the alerter,
//! which owns the alert store, also serves the web interface's alert pages.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use collector::{Batch, Event, Health, PipelineMetrics};
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::datadir::DataDir;
use crate::pipeline::RunSummary;

/// What one `vigie run` process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Role {
    /// The whole stack in one process, stages joined by in-process channels.
    #[default]
    All,
    Collector,
    Analyzer,
    Archiver,
    Alerter,
}

impl Role {
    pub(crate) const NAMES: &'static [&'static str] = &["all", "collector", "analyzer", "archiver", "alerter"];

    pub(crate) fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "all" => Role::All,
            "collector" => Role::Collector,
            "analyzer" => Role::Analyzer,
            "archiver" => Role::Archiver,
            "alerter" => Role::Alerter,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        Role::NAMES[self as usize]
    }
}

/// The collector role's publisher, handed to the pipeline in place of its fan-out.
#[derive(Debug)]
pub(crate) struct EventPublishing {
    publisher: bus::Publisher,
    topic: String,
}

impl EventPublishing {
    /// Publishes every parsed batch until the parse stage closes its output.
    pub(crate) async fn run(self, events: mpsc::Receiver<Batch<Event>>) -> anyhow::Result<()> {
        bus::run_publisher(self.publisher, self.topic, bus::EVENT_CODEC, events).await?;
        Ok(())
    }
}

/// For the pipeline: `Some` when this process is a collector, whose parsed batches go to
/// Kafka instead of the in-process archive and analyzer.
pub(crate) fn collector_publishing(
    config: &Config,
    registry: &mut Registry,
) -> anyhow::Result<Option<EventPublishing>> {
    if config.role != Role::Collector {
        return Ok(None);
    }
    let kafka = config.kafka.as_ref().context("the collector role needs a [kafka] section")?;
    let metrics = bus::BusMetrics::register(registry);
    let publisher = bus::Publisher::new(kafka, metrics).context("creating the kafka producer")?;
    tracing::info!(brokers = %kafka.brokers, topic = %kafka.events_topic, "collector: events go to kafka");
    Ok(Some(EventPublishing { publisher, topic: kafka.events_topic.clone() }))
}

/// Runs this process's role until `shutdown`.
pub(crate) async fn run(
    config: Config,
    data: DataDir,
    shutdown: CancellationToken,
    banner: impl FnOnce(&std::net::SocketAddr),
) -> anyhow::Result<RunSummary> {
    match config.role {
        Role::All | Role::Collector => crate::pipeline::run(config, data, shutdown, banner).await,
        Role::Analyzer | Role::Archiver | Role::Alerter => run_consumer_role(config, data, shutdown, banner).await,
    }
}

/// Tasks of a role, each reported in `/readyz`; the first failure stops the process.
#[derive(Debug)]
struct Tasks {
    tracker: TaskTracker,
    health: Health,
    fatal: CancellationToken,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Tasks {
    fn spawn(&self, name: &str, fut: impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static) {
        let (name, health, fatal, failures) =
            (name.to_owned(), self.health.clone(), self.fatal.clone(), self.failures.clone());
        health.expect(&name);
        self.tracker.spawn(async move {
            health.set(&name, true);
            let result = fut.await;
            health.set(&name, false);
            if let Err(e) = result {
                tracing::error!(task = %name, error = format!("{e:#}"), "task failed; stopping");
                failures.lock().unwrap_or_else(|e| e.into_inner()).push(format!("{name}: {e:#}"));
                fatal.cancel();
            }
        });
    }
}

async fn run_consumer_role(
    config: Config,
    data: DataDir,
    shutdown: CancellationToken,
    banner: impl FnOnce(&std::net::SocketAddr),
) -> anyhow::Result<RunSummary> {
    let role = config.role;
    let kafka = config.kafka.clone().with_context(|| format!("the {} role needs a [kafka] section", role.name()))?;
    let mut registry = Registry::default();
    let bus_metrics = bus::BusMetrics::register(&mut registry);
    let pipeline_metrics = PipelineMetrics::register(&mut registry);
    let tasks = Tasks {
        tracker: TaskTracker::new(),
        health: Health::default(),
        fatal: shutdown.child_token(),
        failures: Arc::default(),
    };
    let alerts_db = data.join("alerting.sqlite");
    let cap = config.channel_capacity;
    // The consumer stops on shutdown; the durable stage behind it stops when its input
    // closes, after writing everything the consumer handed it.
    let consumer_stop = tasks.fatal.clone();

    match role {
        Role::Archiver => {
            let archive_metrics = retention::ArchiveMetrics::register(&mut registry);
            // Sealing and the purge run inside the archive stage, as in the embedded pipeline.
            let (archive, recorder, maintenance) = crate::pipeline::open_archive(&config, &data)?;
            // Bounded: a slow archive slows this consumer (its lag grows in Kafka), nothing else.
            let (tx, rx) = mpsc::channel::<Batch<Event>>(cap);
            let spec =
                bus::ConsumerSpec { role: "archiver", topic: kafka.events_topic.clone(), decode: bus::decode_event };
            let (k, m) = (kafka.clone(), bus_metrics.clone());
            tasks.spawn(
                "kafka-consumer",
                async move { Ok(bus::run_consumer(&k, spec, tx, None, m, consumer_stop).await?) },
            );
            let interval = config.commit_interval;
            tasks.spawn("archive", async move {
                let never = CancellationToken::new();
                retention::run_archive(archive, recorder, maintenance, rx, interval, archive_metrics, never).await?;
                Ok(())
            });
        }
        Role::Analyzer => {
            let rules = Arc::new(
                analyzer::RuleSet::load_dir(&config.rules_dir)
                    .with_context(|| format!("loading the rules in {}", config.rules_dir.display()))?,
            );
            tracing::info!(rules = rules.len(), dir = %config.rules_dir.display(), "rules loaded");
            let (events_tx, events_rx) = mpsc::channel::<Batch<Event>>(cap);
            let (replay_tx, replay_rx) = mpsc::channel(cap);
            let (detect_tx, detect_rx) = mpsc::channel::<Batch<analyzer::Detection>>(cap);
            let spec =
                bus::ConsumerSpec { role: "analyzer", topic: kafka.events_topic.clone(), decode: bus::decode_event };
            let replay = bus::ReplaySpec { output: replay_tx, window: kafka.replay_window };
            let (k, m) = (kafka.clone(), bus_metrics.clone());
            tasks.spawn("kafka-consumer", async move {
                Ok(bus::run_consumer(&k, spec, events_tx, Some(replay), m, consumer_stop).await?)
            });
            let (publish, watched) = tokio::sync::watch::channel(rules);
            let m = pipeline_metrics.clone();
            tasks.spawn("analyzer", analyze(watched, events_rx, replay_rx, detect_tx, m));
            let reload_metrics = crate::reload::ReloadMetrics::register(&mut registry);
            let (dir, stop) = (config.rules_dir.clone(), tasks.fatal.clone());
            tasks.spawn(
                "rule-watch",
                crate::reload::watch_rules(dir, Duration::from_secs(2), publish, reload_metrics, stop),
            );
            let publisher = bus::Publisher::new(&kafka, bus_metrics.clone()).context("creating the kafka producer")?;
            let topic = kafka.detections_topic.clone();
            tasks.spawn("kafka-publish", async move {
                Ok(bus::run_publisher(publisher, topic, bus::DETECTION_CODEC, detect_rx).await?)
            });
        }
        Role::Alerter => {
            let alerting_metrics = alerting::AlertingMetrics::register(&mut registry);
            let store = alerting::AlertStore::open(&alerts_db, alert_policy(&config, signing_key(&data)?))
                .context("opening the alert store")?;
            let (tx, rx) = mpsc::channel::<Batch<analyzer::Detection>>(cap);
            let spec = bus::ConsumerSpec {
                role: "alerter",
                topic: kafka.detections_topic.clone(),
                decode: bus::decode_detection,
            };
            let (k, m) = (kafka.clone(), bus_metrics.clone());
            tasks.spawn(
                "kafka-consumer",
                async move { Ok(bus::run_consumer(&k, spec, tx, None, m, consumer_stop).await?) },
            );
            let m = alerting_metrics.clone();
            tasks.spawn(
                "alerts",
                async move { Ok(alerting::run_alerts(store, rx, m, CancellationToken::new()).await?) },
            );
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
            let (db, stop, m) = (alerts_db.clone(), tasks.fatal.clone(), alerting_metrics);
            tasks.spawn("outbox", async move { Ok(alerting::run_outbox(db, transport, m, stop).await?) });
        }
        Role::All | Role::Collector => unreachable!("run in the pipeline"),
    }

    // Every role answers /metrics, /healthz and /readyz; the alerter's alert store feeds the pages.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}; set [server] listen", config.listen))?;
    let local = listener.local_addr()?;
    let blocklist = Arc::new(std::sync::Mutex::new(analyzer::BlockList::new(
        analyzer::BlockPolicy { time_zone: config.time_zone.clone(), ..analyzer::BlockPolicy::default() },
        Vec::new(),
    )));
    let users = data.join("users.sqlite");
    let state = dashboards::AppState::new(dashboards::AppInputs {
        registry: Arc::new(registry),
        health: tasks.health.clone(),
        metrics: pipeline_metrics,
        alerts: alerting::AlertStore::open(&alerts_db, config.policy.clone()).context("opening the alert store")?,
        blocklist,
        time_zone: config.time_zone.clone(),
        users: dashboards::UserStore::open(&users)
            .with_context(|| format!("opening the account database {}", users.display()))?,
        settings: config.server.clone(),
        statistics: None,
        panels: Vec::new(),
        services: match role {
            // The alerter owns the alerting database: its pages list incidents and notices.
            Role::Alerter => dashboards::Services {
                incidents: Some(Arc::new(crate::services::AlertingDesk::new(
                    alerting::Notices::open(&alerts_db, config.notice_policy.clone(), signing_key(&data)?)
                        .context("opening the outage notices")?,
                    alerting::Incidents::open(&alerts_db, config.incident_policy.clone())
                        .context("opening the incidents")?,
                ))),
                ..dashboards::Services::default()
            },
            _ => dashboards::Services::default(),
        },
    });
    let stop = tasks.fatal.clone();
    tasks.spawn("dashboards", async move { Ok(dashboards::serve(listener, state, stop).await?) });
    tasks.tracker.close();
    tracing::info!(role = role.name(), brokers = %kafka.brokers, "role started");
    banner(&local);

    tasks.fatal.cancelled().await;
    tracing::info!("shutting down: the consumer stops, its stage drains, offsets are committed");
    tasks.tracker.wait().await;
    let failures = tasks.failures.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(RunSummary { failures })
}

/// The key of the signed links in the emails (acknowledge an alert, approve a notice).
pub(crate) fn signing_key(data: &DataDir) -> anyhow::Result<alerting::SigningKey> {
    alerting::SigningKey::load_or_create(&data.join("signing.key")).context("opening the link signing key")
}

/// The configured alert policy, with acknowledgement links signed by `key` in the emails.
pub(crate) fn alert_policy(config: &Config, key: alerting::SigningKey) -> alerting::AlertPolicy {
    let mut policy = config.policy.clone();
    policy.ack = Some(alerting::AckLinks {
        key,
        base_url: config.notice_policy.base_url.clone(),
        valid_for: config.ack_valid_for,
    });
    policy
}

/// The analyzer role's rule stage: replays rebuild the windows of newly assigned partitions
/// (their detections were emitted before, and are dropped); live batches yield detections
/// that travel on with the batch's token to the detections topic.
async fn analyze(
    mut rules: tokio::sync::watch::Receiver<Arc<analyzer::RuleSet>>,
    mut input: mpsc::Receiver<Batch<Event>>,
    mut replays: mpsc::Receiver<bus::Replay<Event>>,
    output: mpsc::Sender<Batch<analyzer::Detection>>,
    metrics: PipelineMetrics,
) -> anyhow::Result<()> {
    let mut engine = analyzer::Engine::new(rules.borrow_and_update().clone());
    loop {
        tokio::select! {
            // A replay is sent before any live batch of its partition: take replays first.
            biased;
            Some(replay) = replays.recv() => {
                for event in &replay.items {
                    engine.observe(event);
                }
            }
            batch = input.recv() => {
                let Some(batch) = batch else { break };
                if rules.has_changed().unwrap_or(false) {
                    engine.replace_rules(rules.borrow_and_update().clone());
                }
                metrics.stage_in("analyzer", batch.items.len());
                let detections: Vec<_> = batch.items.iter().flat_map(|e| engine.observe(e)).collect();
                metrics.stage_out("analyzer", detections.len());
                if output.send(Batch::new(detections, batch.ack)).await.is_err() {
                    anyhow::bail!("the detections producer stopped");
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_round_trip() {
        for name in Role::NAMES {
            assert_eq!(Role::parse(name).map(Role::name), Some(*name));
        }
        assert_eq!(Role::parse("web"), None);
    }
}
