//! The monthly operations report (CCTP 4.2.3): availability of each service day against the
//! 06:00 → 03:00 window, the outages and their durations, the incidents with their class and
//! whether the deadline was met, and the security alerts of the month — as an HTML page (and
//! a PDF printed from it by headless Chromium when it is installed).
//!
//! The outages are the ones Vigie recorded as notices (every availability outage opens one,
//! including those inside a maintenance window, which the contract counts as downtime).

use std::path::Path;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use minijinja::context;
use rusqlite::params;
use serde::Serialize;

use analyzer::{CCTP_REQUIRED_RATIO, Outage, ServiceWindow, format_date_fr, monthly};

use crate::french::duration_fr;
use crate::schema::{self, from_ms, to_ms};
use crate::{AlertError, IncidentPolicy, Incidents};

const REPORT_HTML: &str = r#"<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: sans-serif; margin: 2em; color: #222 }
table { border-collapse: collapse; margin-bottom: 1.5em }
th, td { border: 1px solid #bbb; padding: 0.2em 0.6em; text-align: left }
.ko { background: #fde2e2 } .ok { background: #e6f4e6 }
@media print { body { margin: 0 } h2 { page-break-after: avoid } }
</style></head>
<body>
<h1>{{ title }}</h1>
<p>Produit le {{ generated }} par Vigie. Plage contractuelle : l'ENT doit être disponible de 6 h 00 à 3 h 00
(heure de Paris) chaque jour, vacances comprises ; toute indisponibilité dans cette plage est un manquement.</p>

<h2>Synthèse</h2>
<table>
<tr><th>Disponibilité du mois</th><td>{{ availability }} %</td></tr>
<tr><th>Indisponibilité dans la plage contractuelle</th><td>{{ downtime }}</td></tr>
<tr><th>Jours avec indisponibilité</th><td>{{ breached_days }} sur {{ days|length }}</td></tr>
<tr><th>Interruptions</th><td>{{ outages|length }}</td></tr>
<tr><th>Incidents ouverts dans le mois</th><td>{{ incidents|length }} (délai respecté : {{ incidents_met }}, dépassé : {{ incidents_missed }}, en cours : {{ incidents_open }})</td></tr>
<tr><th>Alertes de sécurité</th><td>{{ security_total }}</td></tr>
</table>

<h2>Disponibilité par jour</h2>
<table>
<tr><th>Jour</th><th>Plage</th><th>Indisponibilité</th><th>Disponibilité</th></tr>
{% for d in days %}<tr class="{{ 'ok' if d.met else 'ko' }}"><td>{{ d.day }}</td><td>{{ d.window }}</td><td>{{ d.downtime }}</td><td>{{ d.availability }} %</td></tr>
{% endfor %}</table>

<h2>Interruptions</h2>
{% if outages %}<table>
<tr><th>Service</th><th>Début</th><th>Fin</th><th>Durée</th><th>Avis aux directeurs</th></tr>
{% for o in outages %}<tr><td>{{ o.service }}</td><td>{{ o.start }}</td><td>{{ o.end }}</td><td>{{ o.duration }}</td><td>{{ o.notice }}</td></tr>
{% endfor %}</table>{% else %}<p>Aucune interruption enregistrée.</p>{% endif %}

<h2>Incidents</h2>
{% if incidents %}<table>
<tr><th>N°</th><th>Incident</th><th>Classe (CCTP)</th><th>Ouvert</th><th>Échéance</th><th>Clos</th><th>Délai</th></tr>
{% for i in incidents %}<tr class="{{ 'ko' if i.missed else 'ok' }}"><td>{{ i.id }}</td><td>{{ i.title }}</td><td>{{ i.class }}</td><td>{{ i.opened }}</td><td>{{ i.deadline }}</td><td>{{ i.closed }}</td><td>{{ i.verdict }}</td></tr>
{% endfor %}</table>{% else %}<p>Aucun incident ouvert dans le mois.</p>{% endif %}

<h2>Sécurité</h2>
{% if security %}<table>
<tr><th>Alerte</th><th>Classe (CCTP)</th><th>Alertes</th><th>Détections</th></tr>
{% for s in security %}<tr><td>{{ s.title }}</td><td>{{ s.class }}</td><td>{{ s.alerts }}</td><td>{{ s.detections }}</td></tr>
{% endfor %}</table>{% else %}<p>Aucune alerte de sécurité.</p>{% endif %}

<h2>Sauvegardes</h2>
{% if backups %}<p>État au {{ generated }} : une sauvegarde par jour, conservée {{ backup_days }} jours (CCTP).</p>
<table>
<tr><th>Emplacement</th><th>Jours présents</th><th>Jours manquants ou suspects</th><th>Sauvegarde de la veille</th></tr>
{% for b in backups %}<tr><td><code>{{ b.location }}</code></td><td>{{ b.ok }} sur {{ b.days }}</td><td>{% if b.problems %}<span class="ko">{{ b.problems }}</span>{% else %}aucun{% endif %}</td><td>{{ b.yesterday }}</td></tr>
{% endfor %}</table>{% else %}<p>Aucun emplacement de sauvegarde n'est surveillé (<code>[[watch.backups]]</code>) : état à joindre par l'exploitant.</p>{% endif %}
</body></html>
"#;

/// A rendered monthly report.
#[derive(Debug, Clone, PartialEq)]
pub struct MonthlyReport {
    pub year: i16,
    pub month: i8,
    /// `Rapport d'exploitation de l'ENT — avril 2025`.
    pub title: String,
    pub html: String,
    /// A short plain-text summary (the email's text part).
    pub summary: String,
    /// The month's availability over all its windows, in `[0, 1]`.
    pub availability: f64,
}

#[derive(Serialize)]
struct DayRow {
    day: String,
    window: String,
    downtime: String,
    availability: String,
    met: bool,
}

#[derive(Serialize)]
struct OutageRow {
    service: String,
    start: String,
    end: String,
    duration: String,
    notice: String,
}

#[derive(Serialize)]
struct IncidentRow {
    id: i64,
    title: String,
    class: String,
    opened: String,
    deadline: String,
    closed: String,
    verdict: String,
    missed: bool,
}

#[derive(Serialize)]
struct SecurityRow {
    title: String,
    class: String,
    alerts: i64,
    detections: i64,
}

fn percent(x: f64) -> String {
    format!("{:.3}", x * 100.0).replace('.', ",")
}

/// The report of `year`-`month` from the alerting database at `db`, as known at `now`.
pub fn monthly_report(
    db: &Path,
    year: i16,
    month: i8,
    tz: &TimeZone,
    backups: &[collector::watch::BackupWatch],
    now: Timestamp,
) -> Result<MonthlyReport, AlertError> {
    let first = Date::new(year, month, 1)
        .map_err(|_| AlertError::InvalidPolicy(format!("no such month {year}-{month:02}; write it YYYY-MM")))?;
    let window = ServiceWindow::cctp(tz.clone());
    let (month_start, _) = window.window_of(first);
    let last = first.last_of_month();
    let (_, month_end) = window.window_of(last);
    let conn = schema::open(db)?;

    // Outages recorded as notices, overlapping the month's windows.
    let mut outages = Vec::new();
    let mut rows_out = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT service, starts_at, ended_at, state, COALESCE(approved_by, '') FROM notice
             WHERE kind = 'outage' AND starts_at < ?2 AND (ended_at IS NULL OR ended_at > ?1) ORDER BY starts_at",
        )?;
        let mut rows = stmt.query(params![to_ms(month_start), to_ms(month_end)])?;
        while let Some(r) = rows.next()? {
            let start = from_ms(r.get(1)?)?;
            let end = r.get::<_, Option<i64>>(2)?.map(from_ms).transpose()?;
            outages.push(Outage { start, end });
            let state: String = r.get(3)?;
            let approver: String = r.get(4)?;
            rows_out.push(OutageRow {
                service: r.get(0)?,
                start: format_date_fr(start, tz),
                end: end.map_or_else(|| "en cours".to_owned(), |e| format_date_fr(e, tz)),
                duration: duration_fr(end.unwrap_or(now).duration_since(start)),
                notice: match state.as_str() {
                    "approved" => format!("envoyé (validé par {approver})"),
                    "cancelled" => "non envoyé (rétabli avant validation, ou maintenance)".to_owned(),
                    _ => "en attente de validation".to_owned(),
                },
            });
        }
    }
    let verdict = monthly(&window, &outages, year, month, now, CCTP_REQUIRED_RATIO)
        .map_err(|e| AlertError::InvalidPolicy(e.to_string()))?;
    let days: Vec<DayRow> = verdict
        .days
        .iter()
        .map(|d| DayRow {
            day: format_date_fr(d.window_start, tz).split(',').next().unwrap_or_default().to_owned(),
            window: format!("{} h", d.window_minutes / 60),
            downtime: if d.downtime_minutes > 0.0 {
                duration_fr(SignedDuration::from_secs((d.downtime_minutes * 60.0).round() as i64))
            } else {
                "—".to_owned()
            },
            availability: percent(d.availability),
            met: d.met,
        })
        .collect();

    let register = Incidents::open(
        db,
        IncidentPolicy { time_zone: tz.clone(), from: "vigie@localhost".into(), escalate_to: Vec::new() },
    )?;
    let incidents = register.opened_between(month_start, month_end, now)?;
    let rows_inc: Vec<IncidentRow> = incidents
        .iter()
        .map(|i| IncidentRow {
            id: i.id,
            title: i.title.clone(),
            class: i.class.label().to_owned(),
            opened: format_date_fr(i.opened_at, tz),
            deadline: i
                .deadline
                .map_or_else(|| "après le correctif de l'éditeur".to_owned(), |d| format_date_fr(d, tz)),
            closed: i.closed_at.map_or_else(|| "—".to_owned(), |c| format_date_fr(c, tz)),
            verdict: i.time_left_fr(),
            missed: i.met == Some(false) || (i.closed_at.is_none() && i.time_left.is_some_and(|l| l.is_negative())),
        })
        .collect();

    let mut security = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT title, cctp_class, COUNT(*), SUM(count) FROM alert
             WHERE first_seen >= ?1 AND first_seen < ?2 AND cctp_class LIKE 'securite%'
             GROUP BY title, cctp_class ORDER BY SUM(count) DESC",
        )?;
        let mut rows = stmt.query(params![to_ms(month_start), to_ms(month_end)])?;
        while let Some(r) = rows.next()? {
            let class: analyzer::CctpClass = crate::schema::enum_from_sql(&r.get::<_, String>(1)?)?;
            security.push(SecurityRow {
                title: r.get(0)?,
                class: class.label().to_owned(),
                alerts: r.get(2)?,
                detections: r.get(3)?,
            });
        }
    }
    let security_total: i64 = security.iter().map(|s| s.alerts).sum();
    let title = format!("Rapport d'exploitation de l'ENT — {} {year}", analyzer::month_fr(month));
    let downtime = duration_fr(SignedDuration::from_secs((verdict.downtime_minutes * 60.0).round() as i64));
    let met = rows_inc.iter().filter(|i| incidents.iter().any(|x| x.id == i.id && x.met == Some(true))).count();
    let missed = rows_inc.iter().filter(|i| i.missed).count();
    let open = incidents.iter().filter(|i| i.closed_at.is_none()).count();
    let env = crate::templates::environment_with("report.html", REPORT_HTML);
    let html = crate::templates::render(
        &env,
        "report.html",
        context! {
            title => &title,
            generated => format_date_fr(now, tz),
            availability => percent(verdict.availability),
            downtime => &downtime,
            breached_days => verdict.breached_days,
            days => days,
            outages => rows_out,
            incidents => rows_inc,
            incidents_met => met,
            incidents_missed => missed,
            incidents_open => open,
            security => security,
            security_total => security_total,
            backups => backup_rows(backups, now),
            backup_days => backups.iter().map(|b| b.days).max().unwrap_or(15),
        },
    )?;
    let summary = format!(
        "{title}\n\nDisponibilité du mois : {} %\nIndisponibilité dans la plage 6 h 00 → 3 h 00 : {downtime}\n\
         Jours avec indisponibilité : {} sur {}\nInterruptions : {}\nIncidents ouverts : {} (délai dépassé : {missed})\n\
         Alertes de sécurité : {security_total}\n\nLe rapport complet est la partie HTML de ce message.\n",
        percent(verdict.availability),
        verdict.breached_days,
        verdict.days.len(),
        outages.len(),
        incidents.len(),
    );
    Ok(MonthlyReport { year, month, title, html, summary, availability: verdict.availability })
}

#[derive(Serialize)]
struct BackupRow {
    location: String,
    ok: usize,
    days: u32,
    /// The missing or suspect days, in French; empty when none.
    problems: String,
    yesterday: String,
}

/// Each watched location's last days, checked now (the report states when).
fn backup_rows(watches: &[collector::watch::BackupWatch], now: Timestamp) -> Vec<BackupRow> {
    use collector::watch::BackupDayStatus as S;
    watches
        .iter()
        .map(|w| {
            let r = collector::watch::check_backups(w, now);
            let day = |d: &collector::watch::BackupDay| format!("{:02}/{:02}", d.date.day(), d.date.month());
            let problems: Vec<String> = match &r.error {
                Some(e) => vec![format!("illisible : {e}")],
                None => r
                    .days
                    .iter()
                    .filter_map(|d| match d.status {
                        S::Ok | S::Pending => None,
                        S::Missing => Some(format!("{} absente", day(d))),
                        S::Empty => Some(format!("{} vide", day(d))),
                        S::Shrunk { ratio } => Some(format!("{} réduite à {:.0} %", day(d), ratio * 100.0)),
                    })
                    .collect(),
            };
            let yesterday = match r.days.iter().find(|d| d.days_ago == 1).map(|d| d.status) {
                Some(S::Ok) => "présente".to_owned(),
                Some(S::Pending) => "pas encore attendue".to_owned(),
                Some(S::Missing) | None => "absente".to_owned(),
                Some(S::Empty) => "vide".to_owned(),
                Some(S::Shrunk { .. }) => "réduite".to_owned(),
            };
            BackupRow {
                location: w.location.display().to_string(),
                ok: r.days.iter().filter(|d| d.status == S::Ok).count(),
                days: w.days,
                problems: problems.join(", "),
                yesterday,
            }
        })
        .collect()
}

/// Prints `html_file` to `pdf_file` with headless Chromium, when `chromium` is installed.
/// Returns `Ok(false)` when it is not.
pub fn render_pdf(chromium: &Path, html_file: &Path, pdf_file: &Path) -> Result<bool, AlertError> {
    if !chromium.exists() {
        return Ok(false);
    }
    let profile = tempfile_dir(pdf_file)?;
    let output = std::process::Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--print-to-pdf={}", pdf_file.display()))
        .arg(format!("file://{}", html_file.display()))
        .output()
        .map_err(|e| AlertError::Transport { host: chromium.display().to_string(), reason: e.to_string() });
    let _ = std::fs::remove_dir_all(&profile);
    let output = output?;
    if !output.status.success() || !pdf_file.exists() {
        return Err(AlertError::Transport {
            host: chromium.display().to_string(),
            reason: format!("chromium failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim()),
        });
    }
    Ok(true)
}

/// A scratch Chromium profile next to the output (Chromium refuses to share one).
fn tempfile_dir(near: &Path) -> Result<std::path::PathBuf, AlertError> {
    let dir = near.with_extension(format!("chromium-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| AlertError::Directory { path: dir.clone(), source })?;
    Ok(dir)
}

/// Writes the report as `rapport-YYYY-MM.html` (and `.pdf` with Chromium) into `dir`.
/// Returns what was written, for the journal; a failure is logged, never fatal: the email
/// carries the report anyway.
pub fn write_files(report: &MonthlyReport, dir: &Path) -> String {
    let html = dir.join(format!("rapport-{}-{:02}.html", report.year, report.month));
    let pdf = html.with_extension("pdf");
    let written = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&html, &report.html));
    if let Err(e) = written {
        tracing::error!(file = %html.display(), error = %e, "cannot write the monthly report");
        return String::new();
    }
    match render_pdf(Path::new(CHROMIUM), &html, &pdf) {
        Ok(true) => format!("{} {}", html.display(), pdf.display()),
        Ok(false) => html.display().to_string(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot print the monthly report to PDF");
            html.display().to_string()
        }
    }
}

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The month before the one containing `now` in `tz`: what the report of the 1st covers.
pub fn previous_month(now: Timestamp, tz: &TimeZone) -> (i16, i8) {
    let d = now.to_zoned_datetime(tz.clone()).date();
    if d.month() == 1 { (d.year() - 1, 12) } else { (d.year(), d.month() - 1) }
}

#[cfg(test)]
mod backup_tests {
    use super::*;

    #[test]
    fn the_report_gives_each_backup_location_day_by_day() {
        let dir = tempfile::tempdir().unwrap();
        // 2025-05-01 08:00 in Paris: D-1 is 30 April; 27 April is missing, 25 April is empty.
        for day in 16..=30 {
            if day == 27 {
                continue;
            }
            let size = if day == 25 { 0 } else { 1000 };
            std::fs::write(dir.path().join(format!("ent-2025-04-{day:02}.sql.gz")), vec![b'x'; size]).unwrap();
        }
        let watch = collector::watch::BackupWatch {
            location: dir.path().to_owned(),
            days: 15,
            min_ratio: 0.5,
            due_by: jiff::civil::Time::constant(6, 0, 0, 0),
            time_zone: TimeZone::get("Europe/Paris").unwrap(),
        };
        let db = dir.path().join("alerting.sqlite");
        let now: Timestamp = "2025-05-01T06:00:00Z".parse().unwrap();
        let tz = TimeZone::get("Europe/Paris").unwrap();
        let report = monthly_report(&db, 2025, 4, &tz, &[watch], now).unwrap();
        let html = report.html.replace("&#x2f;", "/");
        assert!(html.contains(&format!("<code>{}</code>", dir.path().display())), "{html}");
        assert!(html.contains("13 sur 15"), "{html}");
        assert!(html.contains("27/04 absente") && html.contains("25/04 vide"), "{html}");
        assert!(html.contains("<td>présente</td>"), "yesterday's is there: {html}");
        let none = monthly_report(&db, 2025, 4, &tz, &[], now).unwrap();
        assert!(none.html.contains("Aucun emplacement de sauvegarde"), "{}", none.html);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notice::tests::notice_policy;
    use crate::{IncidentClass, Notices, SigningKey};
    use analyzer::OutageChange;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn the_report_counts_downtime_in_the_window_incidents_and_security() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("alerting.sqlite");
        let tz = TimeZone::get("Europe/Paris").unwrap();
        let mut notices = Notices::open(&db, notice_policy(2), SigningKey::from_bytes([1; 32])).unwrap();
        // 7 April 2025, 14:30 → 15:15 Paris: 45 min in the window.
        let start = t("2025-04-07T12:30:00Z");
        notices.on_outage("ENT", &OutageChange::Opened { start }, start).unwrap();
        notices.on_outage("ENT", &OutageChange::Closed { start, end: t("2025-04-07T13:15:00Z") }, start).unwrap();
        // 9 April, 04:00 → 05:00 Paris: the maintenance night, not counted.
        let night = t("2025-04-09T02:00:00Z");
        notices.on_outage("ENT", &OutageChange::Opened { start: night }, night).unwrap();
        notices
            .on_outage("ENT", &OutageChange::Closed { start: night, end: t("2025-04-09T03:00:00Z") }, night)
            .unwrap();
        let mut reg = Incidents::open(
            &db,
            IncidentPolicy { time_zone: tz.clone(), from: "vigie@ville.test".into(), escalate_to: vec![] },
        )
        .unwrap();
        let a = reg.open_incident(IncidentClass::Bloquant, "ENT indisponible", None, "m.martin", start).unwrap();
        reg.close(a, "redémarrage", "m.martin", t("2025-04-07T14:00:00Z")).unwrap();
        let b = reg.open_incident(IncidentClass::Sinistre, "Disque détruit", None, "m.martin", start).unwrap();
        reg.close(b, "restauration", "m.martin", t("2025-04-08T12:00:00Z")).unwrap();

        let report = monthly_report(&db, 2025, 4, &tz, &[], t("2025-05-01T08:00:00Z")).unwrap();
        assert_eq!(report.title, "Rapport d'exploitation de l'ENT — avril 2025");
        let expected = 1.0 - 45.0 / (30.0 * 21.0 * 60.0);
        assert!((report.availability - expected).abs() < 1e-9, "{}", report.availability);
        for part in [
            "Jours avec indisponibilité</th><td>1 sur 30",
            "<td>45 min</td>",
            "lundi 7 avril 2025, 14 h 30",
            "Interruptions</th><td>2",
            "incident bloquant",
            "sinistre serveur",
            "délai respecté",
            "délai dépassé de",
            "Aucun emplacement de sauvegarde",
        ] {
            assert!(report.html.contains(part), "{part:?} missing from the report");
        }
        assert!(report.summary.contains("Jours avec indisponibilité : 1 sur 30"), "{}", report.summary);
        assert!(monthly_report(&db, 2025, 13, &tz, &[], now_after()).is_err());
    }

    fn now_after() -> Timestamp {
        t("2026-01-01T00:00:00Z")
    }

    #[test]
    fn previous_month_wraps_the_year() {
        let tz = TimeZone::get("Europe/Paris").unwrap();
        assert_eq!(previous_month(t("2025-01-01T06:00:00Z"), &tz), (2024, 12));
        assert_eq!(previous_month(t("2025-05-01T06:00:00Z"), &tz), (2025, 4));
        // 31 March 23:30 UTC is already 1 April in Paris.
        assert_eq!(previous_month(t("2025-03-31T23:30:00Z"), &tz), (2025, 3));
    }
}
