//! The dashboards' service seams (`dashboards::services`), implemented over the crates that
//! own the data: outage notices and incidents (`alerting`), legal requisitions (`retention`),
//! availability and metric series (`series`). Each opens its own connection to the store it
//! reads, so a page never waits on the pipeline's writers for longer than one SQLite write.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashboards::{
    AuditEntry, Combine, DayAvailability, Export, IncidentView, MonthAvailability, NoticeView, RequisitionQuery,
    RequisitionRecord, RequisitionResult, SearchTarget, Series, ServiceError, ServiceResult,
};
use jiff::Timestamp;
use jiff::civil::Date;

fn failed(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Failed(e.to_string())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- Incidents and outage notices ----

/// Incidents and outage notices, over the alerting database.
#[derive(Debug)]
pub(crate) struct AlertingDesk {
    notices: Mutex<alerting::Notices>,
    incidents: Mutex<alerting::Incidents>,
}

/// Closed incidents stay listed this long.
const RECENT_INCIDENTS: jiff::SignedDuration = jiff::SignedDuration::from_hours(24 * 30);
/// Notices listed at most.
const NOTICES_SHOWN: usize = 50;

impl AlertingDesk {
    pub(crate) fn new(notices: alerting::Notices, incidents: alerting::Incidents) -> AlertingDesk {
        AlertingDesk { notices: Mutex::new(notices), incidents: Mutex::new(incidents) }
    }
}

/// An alerting error as the page shows it: what the user can act on is refused with a French
/// explanation, the rest is a failure for the log.
fn alert_error(e: alerting::AlertError) -> ServiceError {
    match e {
        alerting::AlertError::BadToken(why) => {
            tracing::info!(%why, "emailed link refused");
            ServiceError::Refused(
                "Ce lien n’est pas valide ou a expiré : validez l’avis depuis la page Incidents et avis.".into(),
            )
        }
        alerting::AlertError::NotFound(what) => ServiceError::Refused(format!(
            "Introuvable ou déjà terminé ({what}) : rechargez la page Incidents et avis."
        )),
        alerting::AlertError::InvalidPolicy(why) => ServiceError::Refused(format!("Refusé : {why}.")),
        other => failed(other),
    }
}

impl dashboards::IncidentService for AlertingDesk {
    fn incidents(&self, now: Timestamp) -> ServiceResult<Vec<IncidentView>> {
        let list = lock(&self.incidents).list(false, now).map_err(failed)?;
        let since = now.checked_sub(RECENT_INCIDENTS).unwrap_or(now);
        Ok(list
            .into_iter()
            .filter(|i| i.closed_at.is_none_or(|c| c >= since))
            .map(|i| IncidentView {
                id: i.id,
                title: i.title,
                cctp_class: i.class.label().to_owned(),
                opened: i.opened_at,
                deadline: i.deadline,
                resolved: i.closed_at,
            })
            .collect())
    }

    fn notices(&self, _now: Timestamp) -> ServiceResult<Vec<NoticeView>> {
        let notices = lock(&self.notices);
        let recipients = notices.policy().directors.len();
        let mut out = Vec::new();
        for n in notices.list(NOTICES_SHOWN).map_err(failed)? {
            let (subject, body) = notices.preview(&n).map_err(failed)?;
            out.push(NoticeView {
                id: n.id,
                service: n.service.clone(),
                kind: match n.kind {
                    alerting::NoticeKind::Outage => "interruption".into(),
                    alerting::NoticeKind::Maintenance => "maintenance programmée".into(),
                },
                subject,
                body,
                message: n.message.clone(),
                starts_at: n.starts_at,
                expected_end: n.expected_end,
                ended_at: n.ended_at,
                created: n.requested_at,
                approved: match (n.state, n.approved_at, &n.approved_by) {
                    (alerting::NoticeState::Approved, Some(at), Some(by)) => Some((at, by.clone())),
                    _ => None,
                },
                cancelled: n.state == alerting::NoticeState::Cancelled,
                recipients,
            });
        }
        // Those awaiting approval first, then the newest.
        out.sort_by_key(|n| {
            (n.approved.is_some() || n.cancelled || n.ended_at.is_some(), std::cmp::Reverse(n.created))
        });
        Ok(out)
    }

    fn approve_notice(
        &self,
        id: i64,
        expected_end: Option<Timestamp>,
        message: &str,
        approver: &str,
        now: Timestamp,
    ) -> ServiceResult<usize> {
        let mut notices = lock(&self.notices);
        let current = notices.get(id).map_err(alert_error)?;
        if current.state != alerting::NoticeState::AwaitingApproval {
            return Err(ServiceError::Refused(format!("L’avis n° {id} n’attend pas de validation.")));
        }
        let end_changed = expected_end.is_some_and(|e| e != current.expected_end);
        if end_changed || message != current.message {
            // The edit makes a new revision, which is the one approved just below.
            let end = if end_changed { expected_end } else { None };
            notices.edit(id, end, Some(message), approver, now).map_err(alert_error)?;
        }
        notices.approve(id, approver, now).map_err(alert_error)
    }

    fn approve_with_token(&self, token: &str, now: Timestamp) -> ServiceResult<(i64, usize)> {
        lock(&self.notices).approve_with_token(token, now).map_err(alert_error)
    }
}

// ---- Requisitions ----

/// Searches kept for their export, and for how long.
const SEARCHES_KEPT: usize = 200;
const SEARCH_VALID_FOR: jiff::SignedDuration = jiff::SignedDuration::from_hours(2);
/// Records shown on the page; the export has them all.
const PAGE_SIZE: usize = 500;

#[derive(Debug)]
struct StoredSearch {
    id: String,
    operator: String,
    at: Timestamp,
    requisition: retention::Requisition,
    query: retention::RequisitionQuery,
}

/// Legal requisitions over the archive: every search, export and reading audited.
#[derive(Debug)]
pub(crate) struct RequisitionDesk {
    desk: retention::Requisitions,
    searches: Mutex<VecDeque<StoredSearch>>,
}

impl RequisitionDesk {
    /// The desk over the archive of the data directory, auditing where `vigie archive` does.
    pub(crate) fn open(data: &Path, key: retention::ArchiveKey, clock_source: &str) -> RequisitionDesk {
        RequisitionDesk {
            desk: retention::Requisitions::new(
                &data.join("archive"),
                &data.join("audit").join("requisitions.jsonl"),
                key,
                clock_source,
            ),
            searches: Mutex::new(VecDeque::new()),
        }
    }
}

fn archive_error(e: retention::ArchiveError) -> ServiceError {
    match e {
        retention::ArchiveError::Requisition(why) => ServiceError::Refused(format!("Recherche refusée : {why}.")),
        other => failed(other),
    }
}

/// A random, unguessable search id.
fn search_id() -> String {
    rand::random::<[u8; 16]>().iter().map(|b| format!("{b:02x}")).collect()
}

impl dashboards::RequisitionService for RequisitionDesk {
    fn search(&self, q: &RequisitionQuery, operator: &str, now: Timestamp) -> ServiceResult<RequisitionResult> {
        let requisition = retention::Requisition {
            authority: q.authority.clone(),
            procedure_number: q.procedure_number.clone(),
            legal_basis: q.legal_basis.clone(),
            date: q.date,
        };
        let scope = match &q.target {
            SearchTarget::Ip(ip, port) => retention::Scope::Ip { ip: *ip, port: *port },
            SearchTarget::Network(net) => retention::Scope::Network(
                net.parse().map_err(|_| ServiceError::Refused(format!("La plage {net} n’est pas valide.")))?,
            ),
            SearchTarget::User(u) => retention::Scope::User(u.clone()),
            SearchTarget::School(s) => retention::Scope::School(s.clone()),
        };
        let query = retention::RequisitionQuery { scope, from: q.from, to: q.to };
        let page = self.desk.search(&requisition, operator, &query, 0, PAGE_SIZE).map_err(archive_error)?;
        let records = page
            .records
            .into_iter()
            .map(|r| RequisitionRecord {
                timestamp: r.timestamp,
                source_ip: r.source_ip,
                source_port: r.source_port,
                user: r.user_name,
                school: r.school_uai,
                kind: r.operation,
            })
            .collect::<Vec<_>>();
        let id = search_id();
        let mut searches = lock(&self.searches);
        searches.retain(|s| now.duration_since(s.at) < SEARCH_VALID_FOR);
        while searches.len() >= SEARCHES_KEPT {
            searches.pop_front();
        }
        searches.push_back(StoredSearch { id: id.clone(), operator: operator.to_owned(), at: now, requisition, query });
        Ok(RequisitionResult {
            search_id: id,
            total: page.total,
            truncated: page.total > records.len() as u64,
            records,
        })
    }

    fn export(&self, search_id: &str, operator: &str, now: Timestamp) -> ServiceResult<Export> {
        let (requisition, query) = {
            let searches = lock(&self.searches);
            // Only the officer who searched may export, and only while the search is fresh.
            let found = searches
                .iter()
                .find(|s| s.id == search_id && s.operator == operator && now.duration_since(s.at) < SEARCH_VALID_FOR)
                .ok_or_else(|| {
                    ServiceError::Refused("Cette recherche a expiré ou n’est pas la vôtre : relancez-la.".into())
                })?;
            (found.requisition.clone(), found.query.clone())
        };
        let export =
            self.desk.export(&requisition, operator, &query, retention::ExportFormat::Csv).map_err(archive_error)?;
        let safe: String =
            requisition.procedure_number.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        Ok(Export {
            file_name: format!("requisition-{safe}-{}.csv", now.strftime("%Y%m%dT%H%M%SZ")),
            content_type: "text/csv; charset=utf-8".into(),
            bytes: export.bytes,
        })
    }

    fn audit(&self, operator: &str, limit: usize) -> ServiceResult<Vec<AuditEntry>> {
        let entries = self.desk.audit(operator).map_err(archive_error)?;
        Ok(entries
            .into_iter()
            .rev()
            .take(limit)
            .map(|e| AuditEntry {
                seq: e.seq,
                at: e.at,
                operator: e.operator,
                action: e.action,
                reference: e.requisition.as_ref().map(retention::Requisition::reference).unwrap_or_default(),
                query: e.query.unwrap_or_default(),
                results: e.result_count,
                export_sha256: e.export_sha256,
            })
            .collect())
    }
}

// ---- Availability ----

/// Availability against the contract's 06:00 → 03:00 window, from the probes' outages.
#[derive(Debug)]
pub(crate) struct AvailabilityDesk {
    outages: series::OutageStore,
    series: series::SeriesStore,
    window: analyzer::ServiceWindow,
}

impl AvailabilityDesk {
    pub(crate) fn new(stage: &series::MetricsStage, time_zone: jiff::tz::TimeZone) -> AvailabilityDesk {
        AvailabilityDesk {
            outages: stage.outages().clone(),
            series: stage.store().clone(),
            window: analyzer::ServiceWindow::cctp(time_zone),
        }
    }
}

/// Intervals sorted and coalesced: outages of several probes overlap, and count once.
fn merged(intervals: impl Iterator<Item = (Timestamp, Timestamp)>) -> Vec<(Timestamp, Timestamp)> {
    let mut sorted: Vec<_> = intervals.collect();
    sorted.sort();
    let mut out: Vec<(Timestamp, Timestamp)> = Vec::with_capacity(sorted.len());
    for (start, end) in sorted {
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

impl AvailabilityDesk {
    /// When availability probes started to watch, as far as the month of `day` goes: the
    /// first probe sample of the month (raw samples for the last two days, rollups before).
    fn monitored_since(&self, day: Date, now: Timestamp) -> ServiceResult<Option<Timestamp>> {
        let (from, _) = self.window.window_of(day.first_of_month());
        let (_, to) = self.window.window_of(day.last_of_month());
        let (from, to) = (from.as_millisecond(), to.min(now).as_millisecond());
        if to <= from {
            return Ok(None);
        }
        let rolled = self.series.rollups("probe_success", &[], from, to).map_err(failed)?;
        let raw = self.series.range("probe_success", &[], from, to).map_err(failed)?;
        let first = rolled
            .iter()
            .flat_map(|r| r.rollups.first().map(|p| p.t))
            .chain(raw.iter().flat_map(|r| r.points.first().map(|p| p.t)))
            .min();
        Ok(first.and_then(|t| Timestamp::from_millisecond(t).ok()))
    }
}

impl dashboards::AvailabilityService for AvailabilityDesk {
    fn up_now(&self, now: Timestamp) -> ServiceResult<Option<bool>> {
        let recent = now.checked_sub(jiff::SignedDuration::from_hours(24 * 7)).unwrap_or(now);
        if self.outages.between(recent, now).map_err(failed)?.iter().any(|o| o.end.is_none()) {
            return Ok(Some(false));
        }
        // No open outage: up, provided a probe ran in the last five minutes.
        let probes = self
            .series
            .instant("probe_success", &[], now.as_millisecond(), Duration::from_secs(300))
            .map_err(failed)?;
        Ok((!probes.is_empty()).then_some(true))
    }

    fn month(&self, day: Date, now: Timestamp) -> ServiceResult<MonthAvailability> {
        let since = self.monitored_since(day, now)?;
        let m = series::availability_month(
            &self.outages,
            &self.window,
            day.year(),
            day.month(),
            now,
            analyzer::CCTP_REQUIRED_RATIO,
        )
        .map_err(failed)?;
        let days = m
            .days
            .iter()
            .map(|d| DayAvailability {
                day: d.date,
                window_start: d.window_start,
                window_end: d.window_end,
                outages: merged(m.outages.iter().filter_map(|o| {
                    let (start, end) = (o.start.max(d.window_start), o.end.unwrap_or(now).min(d.window_end));
                    (start < end).then_some((start, end))
                })),
                ratio: d.availability,
                breach: d.verdict == "breached",
                // Watched if a probe sample came before the window closed.
                measured: since.is_some_and(|s| s < d.window_end),
            })
            .collect::<Vec<DayAvailability>>();
        // The month's ratio over the measured part of each window up to now.
        let (mut up, mut total) = (0.0, 0.0);
        for d in days.iter().filter(|d| d.measured && d.window_start < now) {
            let start = since.map_or(d.window_start, |s| s.max(d.window_start));
            let end = now.min(d.window_end);
            let minutes = end.duration_since(start).as_secs_f64() / 60.0;
            let down: f64 = d
                .outages
                .iter()
                .map(|(a, b)| (*b.min(&end)).duration_since(*a.max(&start)).as_secs_f64().max(0.0) / 60.0)
                .sum();
            up += (minutes - down).max(0.0);
            total += minutes.max(0.0);
        }
        Ok(MonthAvailability {
            year: day.year(),
            month: day.month(),
            days,
            ratio: if total > 0.0 { up / total } else { 1.0 },
            required: m.required_ratio,
        })
    }
}

// ---- Metric series ----

/// The series store, read by the panels.
#[derive(Debug)]
pub(crate) struct SeriesDesk {
    store: series::SeriesStore,
}

impl SeriesDesk {
    pub(crate) fn new(stage: &series::MetricsStage) -> SeriesDesk {
        SeriesDesk { store: stage.store().clone() }
    }
}

/// Points drawn per line at most; series are folded into buckets of `span / POINTS`.
const POINTS: i64 = 400;
/// Raw samples are kept 48 h; older ranges are read from the 5-minute rollups.
const RAW_SPAN_MS: i64 = 47 * 3600 * 1000;

/// `name` or `name{label="value",…}` → (name, matchers).
pub(crate) fn parse_selector(selector: &str) -> Result<(String, Vec<(String, String)>), String> {
    let selector = selector.trim();
    let Some((name, rest)) = selector.split_once('{') else {
        return Ok((selector.to_owned(), Vec::new()));
    };
    let body = rest.strip_suffix('}').ok_or_else(|| format!("{selector}: the label list must end with }}"))?;
    let mut matchers = Vec::new();
    for pair in body.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| format!("{selector}: write label=\"value\""))?;
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(|| format!("{selector}: the value of {k} must be in double quotes"))?;
        matchers.push((k.trim().to_owned(), v.to_owned()));
    }
    Ok((name.trim().to_owned(), matchers))
}

/// Folds several series into one line: each series' last value in each bucket, then
/// combined across series.
fn fold(series: Vec<Vec<(i64, f64)>>, step: i64, combine: Combine) -> Vec<(i64, f64)> {
    let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for points in series {
        let mut last: BTreeMap<i64, f64> = BTreeMap::new();
        for (t, v) in points {
            if v.is_finite() {
                last.insert(t - t.rem_euclid(step), v);
            }
        }
        for (b, v) in last {
            buckets.entry(b).or_default().push(v);
        }
    }
    buckets
        .into_iter()
        .map(|(b, vs)| {
            let v = match combine {
                Combine::Sum => vs.iter().sum(),
                Combine::Min => vs.iter().copied().fold(f64::INFINITY, f64::min),
                Combine::Max => vs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            };
            (b, v)
        })
        .collect()
}

impl dashboards::SeriesService for SeriesDesk {
    fn series(
        &self,
        selector: &str,
        combine: Combine,
        from: Timestamp,
        to: Timestamp,
    ) -> ServiceResult<Option<Series>> {
        let (name, matchers) = parse_selector(selector).map_err(failed)?;
        let (from_ms, to_ms) = (from.as_millisecond(), to.as_millisecond());
        let lines: Vec<Vec<(i64, f64)>> = if to_ms - from_ms <= RAW_SPAN_MS {
            let found = self.store.range(&name, &matchers, from_ms, to_ms).map_err(failed)?;
            found.into_iter().map(|r| r.points.into_iter().map(|p| (p.t, p.v)).collect()).collect()
        } else {
            let found = self.store.rollups(&name, &matchers, from_ms, to_ms).map_err(failed)?;
            found.into_iter().map(|r| r.rollups.into_iter().map(|p| (p.t, p.avg)).collect()).collect()
        };
        // Buckets cut the span the data covers, not the one asked for: an hour of data in a
        // 24-hour view still draws as a line.
        let times = lines.iter().flatten().map(|(t, _)| *t);
        let (Some(first), Some(last)) = (times.clone().min(), times.max()) else {
            return Ok(None);
        };
        let step = ((last - first) / POINTS).max(15_000);
        let points = fold(lines, step, combine)
            .into_iter()
            .filter_map(|(t, v)| Some((Timestamp::from_millisecond(t).ok()?, v)))
            .collect();
        Ok(Some(Series { points, forecast: Vec::new() }))
    }
}

/// Every service the configuration allows; the requisition desk needs the archive's key.
pub(crate) fn wire(
    data: &Path,
    (notices, incidents): (alerting::Notices, alerting::Incidents),
    archive_key: Option<&Path>,
    metrics: &series::MetricsStage,
    time_zone: &jiff::tz::TimeZone,
) -> anyhow::Result<dashboards::Services> {
    let requisitions = match archive_key {
        Some(path) => {
            let key = retention::ArchiveKey::load(path)?;
            let desk = RequisitionDesk::open(data, key, "horloge système (UTC), synchronisation NTP de l'hôte");
            Some(Arc::new(desk) as Arc<dyn dashboards::RequisitionService>)
        }
        None => {
            tracing::warn!("no [retention] signing_key: requisition searches are off in the dashboards");
            None
        }
    };
    Ok(dashboards::Services {
        incidents: Some(Arc::new(AlertingDesk::new(notices, incidents))),
        requisitions,
        availability: Some(Arc::new(AvailabilityDesk::new(metrics, time_zone.clone()))),
        series: Some(Arc::new(SeriesDesk::new(metrics))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_name_a_series_and_its_labels() {
        assert_eq!(parse_selector("host_load1").unwrap(), ("host_load1".into(), vec![]));
        assert_eq!(
            parse_selector(r#"apache_workers{state="busy", server="web1"}"#).unwrap(),
            ("apache_workers".into(), vec![("state".into(), "busy".into()), ("server".into(), "web1".into())])
        );
        assert!(parse_selector("apache_workers{state=busy}").unwrap_err().contains("double quotes"));
        assert!(parse_selector(r#"apache_workers{state="busy""#).unwrap_err().contains("must end"));
    }

    #[test]
    fn days_before_monitoring_are_not_measured_and_count_in_no_ratio() {
        use dashboards::AvailabilityService;
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let outages = series::OutageStore::open(&dir.path().join("outages.sqlite")).unwrap();
        let store = series::SeriesStore::in_memory(series::StoreConfig::default());
        // Probes start on 10 April 2025 at 10:00 UTC (12:00 in Paris), every minute.
        let start = t("2025-04-10T10:00:00Z");
        let now = t("2025-04-11T12:00:00Z");
        let mut at = start;
        while at <= now {
            store.append("probe_success", &[("probe".into(), "ent".into())], at.as_millisecond(), 1.0);
            at = at.checked_add(jiff::SignedDuration::from_mins(1)).unwrap();
        }
        let (down, up) = (t("2025-04-10T12:00:00Z"), t("2025-04-10T12:30:00Z"));
        outages.record("ent", &analyzer::OutageChange::Opened { start: down }).unwrap();
        outages.record("ent", &analyzer::OutageChange::Closed { start: down, end: up }).unwrap();
        let paris = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
        let desk = AvailabilityDesk { outages, series: store, window: analyzer::ServiceWindow::cctp(paris) };
        let month = desk.month("2025-04-10".parse().unwrap(), now).unwrap();
        let day = |d: i8| month.days.iter().find(|x| x.day.day() == d).unwrap();
        assert!(!day(9).measured && !day(1).measured, "before the probes: not measured");
        assert!(day(10).measured && day(11).measured);
        assert_eq!(day(10).outages, [(down, up)]);
        // Measured: 10 April from 10:00 UTC to 01:00 UTC (03:00 in Paris) = 900 min with 30 down,
        // 11 April from 04:00 UTC (06:00 in Paris) to now = 480 min.
        let expected = (870.0 + 480.0) / (900.0 + 480.0);
        assert!((month.ratio - expected).abs() < 1e-9, "{} != {expected}", month.ratio);
        assert_eq!(desk.up_now(now).unwrap(), Some(true));
    }

    #[test]
    fn overlapping_outages_of_several_probes_count_once() {
        let t = |m: i64| Timestamp::from_second(1_750_000_000 + m * 60).unwrap();
        let got = merged([(t(10), t(20)), (t(0), t(5)), (t(15), t(30)), (t(30), t(31)), (t(40), t(41))].into_iter());
        assert_eq!(got, [(t(0), t(5)), (t(10), t(31)), (t(40), t(41))]);
    }

    #[test]
    fn series_are_folded_per_bucket() {
        // Two file systems scraped a few seconds apart: the fullest one's free space.
        let a = vec![(1_000, 50.0), (16_000, 49.0)];
        let b = vec![(3_000, 20.0), (18_000, 19.0), (19_000, f64::NAN)];
        assert_eq!(fold(vec![a.clone(), b.clone()], 15_000, Combine::Min), vec![(0, 20.0), (15_000, 19.0)]);
        assert_eq!(fold(vec![a.clone(), b.clone()], 15_000, Combine::Max), vec![(0, 50.0), (15_000, 49.0)]);
        assert_eq!(fold(vec![a, b], 15_000, Combine::Sum), vec![(0, 70.0), (15_000, 68.0)]);
    }
}
