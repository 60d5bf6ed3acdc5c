//! The operators' commands on the alerting database of a configured Vigie: silences, outage
//! notices, incidents, planned maintenance and the monthly report. They work while `vigie
//! run` is running (SQLite in WAL mode), and every change records who made it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use jiff::Timestamp;

use crate::config::{self, Config};

/// `vigie silence …`
#[derive(Debug, Subcommand)]
pub(crate) enum SilenceCommand {
    /// Mute the emails of alerts matching a rule and/or a key until a time.
    #[command(
        after_help = "Example:\n  vigie silence add -c /etc/vigie/vigie.toml --rule ent.server-errors --for 2h \\\n    \
                            --by m.martin --reason \"mise à jour PHP\""
    )]
    Add {
        #[command(flatten)]
        at: ConfigArg,
        /// The rule id to silence (`ent.server-errors`).
        #[arg(long)]
        rule: Option<String>,
        /// The grouping key to silence (`source.ip=203.0.113.9`).
        #[arg(long)]
        key: Option<String>,
        /// How long (`90m`, `4h`, `2d`).
        #[arg(long = "for", value_name = "DURATION", value_parser = crate::parse_duration_arg, conflicts_with = "until")]
        duration: Option<Duration>,
        /// Until when (`2025-04-08T18:00`, Paris time, or RFC 3339).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Who sets it (recorded).
        #[arg(long)]
        by: String,
        /// Why (recorded, shown on the dashboard).
        #[arg(long)]
        reason: String,
    },
    /// List the active and scheduled silences.
    List {
        #[command(flatten)]
        at: ConfigArg,
    },
    /// End a silence now.
    Expire {
        #[command(flatten)]
        at: ConfigArg,
        id: i64,
        #[arg(long)]
        by: String,
    },
}

/// `vigie notice …`
#[derive(Debug, Subcommand)]
pub(crate) enum NoticeCommand {
    /// List the outage and maintenance notices, with their approval and delivery state.
    List {
        #[command(flatten)]
        at: ConfigArg,
    },
    /// Approve a notice: it is then emailed to every school director.
    Approve {
        #[command(flatten)]
        at: ConfigArg,
        id: i64,
        /// The approver (recorded).
        #[arg(long)]
        by: String,
    },
    /// Change a notice's estimate or message; it must then be approved again.
    #[command(
        after_help = "Example:\n  vigie notice edit -c vigie.toml 3 --estimate 4h --message \"Panne du serveur de base de données.\" --by m.martin"
    )]
    Edit {
        #[command(flatten)]
        at: ConfigArg,
        id: i64,
        /// The new estimated duration, from the start of the outage (`3h`).
        #[arg(long, value_parser = crate::parse_duration_arg, conflicts_with = "until")]
        estimate: Option<Duration>,
        /// The new expected time of recovery (`2025-04-08T18:00`, Paris time).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Text added to the directors' message.
        #[arg(long)]
        message: Option<String>,
        #[arg(long)]
        by: String,
    },
}

/// `vigie incident …`
#[derive(Debug, Subcommand)]
pub(crate) enum IncidentCommand {
    /// List incidents with their CCTP deadline and the time left.
    List {
        #[command(flatten)]
        at: ConfigArg,
        /// Closed incidents too.
        #[arg(long)]
        all: bool,
    },
    /// Open an incident.
    #[command(after_help = "Classes: bloquant, majeur_non_bloquant, mineur, securite_majeure_code_propre,\n\
                            securite_majeure_code_externe, securite_mineure, sinistre.\n\n\
                            Example:\n  vigie incident open -c vigie.toml --class bloquant --title \"ENT indisponible\" --alert 12 --by m.martin")]
    Open {
        #[command(flatten)]
        at: ConfigArg,
        #[arg(long)]
        class: String,
        #[arg(long)]
        title: String,
        /// The alert group it comes from.
        #[arg(long)]
        alert: Option<i64>,
        #[arg(long)]
        by: String,
    },
    /// Close an incident.
    Close {
        #[command(flatten)]
        at: ConfigArg,
        id: i64,
        #[arg(long)]
        resolution: String,
        #[arg(long)]
        by: String,
    },
    /// Record the vendor's fix of an external-code flaw (its 20 working days start then).
    VendorFix {
        #[command(flatten)]
        at: ConfigArg,
        id: i64,
        /// When the fix was published (default: now).
        #[arg(long, value_name = "TIME")]
        on: Option<String>,
        #[arg(long)]
        by: String,
    },
}

/// `vigie maintenance …`
#[derive(Debug, Subcommand)]
pub(crate) enum MaintenanceCommand {
    /// Schedule a maintenance window: a preventive notice to the directors (after approval),
    /// and silences of the alerts it explains.
    #[command(
        after_help = "Example:\n  vigie maintenance add -c vigie.toml --start 2025-04-08T03:00 --end 2025-04-08T05:30 \\\n    \
                            --message \"Mise à jour de sécurité.\" --by m.martin"
    )]
    Add {
        #[command(flatten)]
        at: ConfigArg,
        /// Start (`2025-04-08T03:00`, Paris time, or RFC 3339).
        #[arg(long)]
        start: String,
        #[arg(long)]
        end: String,
        /// The service (`ENT`).
        #[arg(long, default_value = "ENT")]
        service: String,
        /// Text of the preventive notice.
        #[arg(long, default_value = "")]
        message: String,
        #[arg(long)]
        by: String,
    },
    /// List planned maintenance windows.
    List {
        #[command(flatten)]
        at: ConfigArg,
    },
}

/// The configuration whose data directory holds the alerting database.
#[derive(Debug, clap::Args)]
pub(crate) struct ConfigArg {
    /// The TOML configuration of the running Vigie.
    #[arg(long, short, value_name = "FILE")]
    config: PathBuf,
}

struct Open {
    config: Config,
    db: PathBuf,
}

fn open(at: &ConfigArg) -> anyhow::Result<Open> {
    let config = config::load(&at.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let db = config.data_dir.join("alerting.sqlite");
    if !db.exists() {
        anyhow::bail!(
            "no alerting database at {}: start `vigie run --config {}` once first",
            db.display(),
            at.config.display()
        );
    }
    Ok(Open { config, db })
}

fn key(data: &Path) -> anyhow::Result<alerting::SigningKey> {
    Ok(alerting::SigningKey::load_or_create(&data.join("signing.key"))?)
}

fn notices(o: &Open) -> anyhow::Result<alerting::Notices> {
    alerting::Notices::open(&o.db, o.config.notice_policy.clone(), key(&o.config.data_dir)?)
        .context("opening the notices")
}

fn store(o: &Open) -> anyhow::Result<alerting::AlertStore> {
    alerting::AlertStore::open(&o.db, o.config.policy.clone()).context("opening the alert store")
}

fn incidents(o: &Open) -> anyhow::Result<alerting::Incidents> {
    alerting::Incidents::open(&o.db, o.config.incident_policy.clone()).context("opening the incidents")
}

/// `2025-04-08T18:00` in `tz`, or an RFC 3339 instant.
pub(crate) fn parse_time(s: &str, tz: &jiff::tz::TimeZone) -> anyhow::Result<Timestamp> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    let civil: jiff::civil::DateTime = s.parse().with_context(|| {
        format!("`{s}` is not a time; write it like 2025-04-08T18:00 (Paris time) or 2025-04-08T16:00:00Z")
    })?;
    // A time in the autumn's repeated hour is its first occurrence; one in the spring gap, the
    // instant after it (jiff's "compatible" rule, as in RFC 5545).
    tz.to_ambiguous_timestamp(civil).compatible().with_context(|| format!("`{s}` is out of range"))
}

fn fr(t: Timestamp, c: &Config) -> String {
    alerting::format_date_fr(t, &c.time_zone)
}

pub(crate) fn silence(cmd: SilenceCommand) -> anyhow::Result<()> {
    let now = Timestamp::now();
    match cmd {
        SilenceCommand::Add { at, rule, key, duration, until, by, reason } => {
            let o = open(&at)?;
            let until = match (duration, until) {
                (Some(d), _) => now.checked_add(jiff::SignedDuration::try_from(d)?)?,
                (None, Some(u)) => parse_time(&u, &o.config.time_zone)?,
                (None, None) => anyhow::bail!("say how long: --for 2h, or --until 2025-04-08T18:00"),
            };
            let id = store(&o)?.silence(&alerting::SilenceMatcher { rule, key }, until, &by, &reason, now)?;
            println!("silence {id} until {}", fr(until, &o.config));
        }
        SilenceCommand::List { at } => {
            let o = open(&at)?;
            let list = store(&o)?.silences(now)?;
            if list.is_empty() {
                println!("no active or scheduled silence");
            }
            for s in list {
                println!(
                    "{}\trule={}\tkey={}\tfrom {}\tuntil {}\tby {}\t{}",
                    s.id,
                    s.matcher.rule.as_deref().unwrap_or("*"),
                    s.matcher.key.as_deref().unwrap_or("*"),
                    fr(s.starts_at.max(s.created_at), &o.config),
                    fr(s.until, &o.config),
                    s.created_by,
                    s.reason
                );
            }
        }
        SilenceCommand::Expire { at, id, by } => {
            let o = open(&at)?;
            if store(&o)?.expire_silence_by(id, &by, now)? {
                println!("silence {id} expired");
            } else {
                anyhow::bail!("silence {id} is not active (unknown or already over)");
            }
        }
    }
    Ok(())
}

pub(crate) fn notice(cmd: NoticeCommand) -> anyhow::Result<()> {
    let now = Timestamp::now();
    match cmd {
        NoticeCommand::List { at } => {
            let o = open(&at)?;
            let n = notices(&o)?;
            let list = n.list(50)?;
            if list.is_empty() {
                println!("no notice");
            }
            for x in list {
                let d = n.deliveries(x.id)?;
                println!(
                    "{}\t{:?}\t{}\t{:?}\tv{} (sent v{})\tfrom {}\texpected end {}\tapproved by {}\tsent {} queued {} bounced {}",
                    x.id,
                    x.kind,
                    x.service,
                    x.state,
                    x.revision,
                    x.sent_revision,
                    fr(x.starts_at, &o.config),
                    fr(x.expected_end, &o.config),
                    x.approved_by.as_deref().unwrap_or("-"),
                    d.sent,
                    d.queued,
                    d.bounced.len()
                );
                for (uai, to, error) in d.bounced {
                    println!("\tbounce\t{uai}\t{to}\t{error}");
                }
            }
        }
        NoticeCommand::Approve { at, id, by } => {
            let o = open(&at)?;
            let n = notices(&o)?.approve(id, &by, now)?;
            println!("notice {id} approved by {by}: {n} emails queued to the directors");
        }
        NoticeCommand::Edit { at, id, estimate, until, message, by } => {
            let o = open(&at)?;
            let mut n = notices(&o)?;
            let end = match (estimate, until) {
                (Some(d), _) => Some(n.get(id)?.starts_at.checked_add(jiff::SignedDuration::try_from(d)?)?),
                (None, Some(u)) => Some(parse_time(&u, &o.config.time_zone)?),
                (None, None) => None,
            };
            let x = n.edit(id, end, message.as_deref(), &by, now)?;
            println!(
                "notice {id} is now version {}, expected end {}: awaiting approval (approvers emailed)",
                x.revision,
                fr(x.expected_end, &o.config)
            );
        }
    }
    Ok(())
}

pub(crate) fn incident(cmd: IncidentCommand) -> anyhow::Result<()> {
    let now = Timestamp::now();
    match cmd {
        IncidentCommand::List { at, all } => {
            let o = open(&at)?;
            let list = incidents(&o)?.list(!all, now)?;
            if list.is_empty() {
                println!("no incident");
            }
            for i in list {
                println!(
                    "{}\t{}\t{}\topened {} by {}\tdeadline {}\t{}{}",
                    i.id,
                    i.class.name(),
                    i.title,
                    fr(i.opened_at, &o.config),
                    i.opened_by,
                    i.deadline.map_or_else(|| "-".to_owned(), |d| fr(d, &o.config)),
                    i.time_left_fr(),
                    i.closed_at.map_or_else(String::new, |c| format!("\tclosed {}", fr(c, &o.config)))
                );
            }
        }
        IncidentCommand::Open { at, class, title, alert, by } => {
            let o = open(&at)?;
            let class = alerting::IncidentClass::parse(&class)?;
            let mut reg = incidents(&o)?;
            let id = reg.open_incident(class, &title, alert, &by, now)?;
            let i = reg.get(id, now)?;
            println!(
                "incident {id} ({}) opened; deadline {}",
                class.label(),
                i.deadline.map_or_else(|| "after the vendor's fix".to_owned(), |d| fr(d, &o.config))
            );
        }
        IncidentCommand::Close { at, id, resolution, by } => {
            let o = open(&at)?;
            let mut reg = incidents(&o)?;
            if !reg.close(id, &resolution, &by, now)? {
                anyhow::bail!("incident {id} is not open");
            }
            println!("incident {id} closed: {}", reg.get(id, now)?.time_left_fr());
        }
        IncidentCommand::VendorFix { at, id, on, by } => {
            let o = open(&at)?;
            let when = on.map(|s| parse_time(&s, &o.config.time_zone)).transpose()?.unwrap_or(now);
            let mut reg = incidents(&o)?;
            reg.set_vendor_fix(id, when, &by, now)?;
            let i = reg.get(id, now)?;
            println!("incident {id}: deadline {}", i.deadline.map_or_else(|| "-".to_owned(), |d| fr(d, &o.config)));
        }
    }
    Ok(())
}

pub(crate) fn maintenance(cmd: MaintenanceCommand) -> anyhow::Result<()> {
    let now = Timestamp::now();
    match cmd {
        MaintenanceCommand::Add { at, start, end, service, message, by } => {
            let o = open(&at)?;
            let tz = &o.config.time_zone;
            let (start, end) = (parse_time(&start, tz)?, parse_time(&end, tz)?);
            let plan = notices(&o)?.schedule_maintenance(&service, start, end, &message, &by, now)?;
            println!(
                "maintenance {} scheduled from {} to {}; preventive notice awaiting approval; {} silence(s)",
                plan.notice_id,
                fr(start, &o.config),
                fr(end, &o.config),
                plan.silences.len()
            );
            for w in plan.warnings {
                eprintln!("vigie: warning: {w}");
            }
        }
        MaintenanceCommand::List { at } => {
            let o = open(&at)?;
            let list: Vec<_> =
                notices(&o)?.list(200)?.into_iter().filter(|n| n.kind == alerting::NoticeKind::Maintenance).collect();
            if list.is_empty() {
                println!("no planned maintenance");
            }
            for m in list {
                println!(
                    "{}\t{}\t{} → {}\t{:?}\tby {}\t{}",
                    m.id,
                    m.service,
                    fr(m.starts_at, &o.config),
                    fr(m.expected_end, &o.config),
                    m.state,
                    m.created_by,
                    m.message
                );
            }
        }
    }
    Ok(())
}

/// `vigie report --month YYYY-MM`: the monthly report into `out`.
pub(crate) fn monthly_report(config_file: &Path, month: &str, out: &Path) -> anyhow::Result<()> {
    let o = open(&ConfigArg { config: config_file.to_owned() })?;
    let (y, m) = month
        .split_once('-')
        .and_then(|(y, m)| Some((y.parse::<i16>().ok()?, m.parse::<i8>().ok()?)))
        .with_context(|| format!("--month {month}: write it YYYY-MM, like 2025-04"))?;
    let report =
        alerting::monthly_report(&o.db, y, m, &o.config.time_zone, &o.config.notice_policy.backups, Timestamp::now())?;
    let written = alerting::write_files(&report, out);
    if written.is_empty() {
        anyhow::bail!("cannot write the report into {}", out.display());
    }
    println!("{}: {written}", report.title);
    if !Path::new(alerting::CHROMIUM).exists() {
        eprintln!("vigie: note: {} is not installed, so no PDF was printed", alerting::CHROMIUM);
    }
    Ok(())
}
