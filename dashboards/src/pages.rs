//! HTML pages, in French, for the city's IT service, on-call and the legal officer. Rendered
//! with maud, which escapes every interpolated value. No inline script or style (the CSP
//! forbids them): the style sheet and the small refresh script are served by Vigie.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use collector::PipelineMetrics;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use maud::{DOCTYPE, Markup, html};

use crate::app::{RANGES, SearchForm, TrafficQuery};
use crate::panels::Panel;
use crate::routes::{Access, ROUTES};
use crate::services::{AuditEntry, IncidentView, MonthAvailability, NoticeView, RequisitionResult, Series};
use crate::stats::{KIND_ARTICLE, KIND_LOGIN, KIND_REQUEST, KIND_UNIQUE_USERS, Period, StatRow};
use crate::svg::{self, num};
use crate::users::Session;

/// The style sheet, served at `/static/vigie.css`.
pub(crate) const CSS: &str = include_str!("../static/vigie.css");
/// The refresh and range-picker script, served at `/static/vigie.js`.
pub(crate) const JS: &str = include_str!("../static/vigie.js");

/// Events through each stage since start.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct StageCounts {
    pub(crate) parsed: u64,
    pub(crate) analyzed: u64,
    pub(crate) detections: u64,
}

impl StageCounts {
    pub(crate) fn read(metrics: &PipelineMetrics) -> StageCounts {
        StageCounts {
            parsed: metrics.stage_out_total("parse"),
            analyzed: metrics.stage_in_total("analyzer"),
            detections: metrics.stage_out_total("analyzer"),
        }
    }
}

/// What every page knows: who reads it, where, when.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) session: &'a Session,
    pub(crate) path: &'static str,
    pub(crate) now: Timestamp,
    pub(crate) tz: &'a TimeZone,
    pub(crate) refresh: u64,
    pub(crate) range: (&'static str, i64),
}

impl Ctx<'_> {
    fn date(&self, t: Timestamp) -> String {
        alerting::format_date_fr(t, self.tz)
    }

    /// To the second, for the legal pages (`07/04/2025 14:30:05`): an authority matches a
    /// connection by its second and port, and the audit log orders actions within a minute.
    fn precise(&self, t: Timestamp) -> String {
        t.to_zoned_datetime(self.tz.clone()).strftime("%d/%m/%Y %H:%M:%S").to_string()
    }

    /// The value of a `datetime-local` field for `t`, in the page's zone (`2025-04-07T14:30`).
    fn local_input(&self, t: Timestamp) -> String {
        t.to_zoned_datetime(self.tz.clone()).strftime("%Y-%m-%dT%H:%M").to_string()
    }
}

/// The severity as the city's staff read it.
fn severity_fr(severity: analyzer::Severity) -> &'static str {
    match severity {
        analyzer::Severity::Info => "information",
        analyzer::Severity::Warning => "avertissement",
        analyzer::Severity::Critical => "critique",
    }
}

fn severity_color(severity: analyzer::Severity) -> &'static str {
    match severity {
        analyzer::Severity::Info => svg::GREY,
        analyzer::Severity::Warning => svg::ORANGE,
        analyzer::Severity::Critical => svg::RED,
    }
}

fn not_configured(what: &str) -> Markup {
    html! { p.notconfigured { (what) " : non configuré sur ce serveur." } }
}

/// An availability as a percentage with one decimal, rounded down: a window with a one-minute
/// outage is 99,9 %, never a red « 100 % ».
fn percent(ratio: f64) -> String {
    format!("{} %", num((ratio * 1000.0 + 1e-9).floor() / 10.0))
}

fn csrf_field(ctx: &Ctx<'_>) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.session.csrf); }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " — Vigie" }
            link rel="stylesheet" href="/static/vigie.css";
            script src="/static/vigie.js" defer {}
        }
    }
}

fn layout(ctx: &Ctx<'_>, title: &str, picker: bool, body: Markup) -> Markup {
    let role = ctx.session.user.role;
    html! {
        (DOCTYPE)
        html lang="fr" {
            (head(title))
            body data-refresh=(ctx.refresh) {
                header {
                    div.brand { "Vigie" span { " — supervision de l’ENT" } }
                    nav aria-label="Pages" {
                        @for r in ROUTES.iter().filter(|r| r.nav.is_some()) {
                            @if let Access::Roles(roles) = r.access {
                                @if roles.contains(&role) {
                                    @if r.path == ctx.path {
                                        a href=(r.path) aria-current="page" { (r.nav.unwrap_or_default()) }
                                    } @else {
                                        a href=(r.path) { (r.nav.unwrap_or_default()) }
                                    }
                                }
                            }
                        }
                    }
                    form.logout method="post" action="/deconnexion" {
                        (csrf_field(ctx))
                        span.who { (ctx.session.user.name) " — " (role.label_fr()) }
                        button type="submit" { "Se déconnecter" }
                    }
                }
                main {
                    div.titlebar {
                        h1 { (title) }
                        @if picker {
                            form.picker method="get" action=(ctx.path) {
                                label for="periode" { "Période" }
                                select id="periode" name="periode" {
                                    @for (key, label, _) in RANGES {
                                        option value=(key) selected[*key == ctx.range.0] { (label) }
                                    }
                                }
                                button type="submit" { "Afficher" }
                            }
                        }
                    }
                    p.updated { "Mis à jour le " (ctx.date(ctx.now)) " — actualisation automatique toutes les " (ctx.refresh) " s." }
                    (body)
                }
            }
        }
    }
}

/// A page for refusals and errors (no navigation: the visitor may have no session).
pub(crate) fn error_page(status: StatusCode, text: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="fr" {
            (head("Erreur"))
            body.bare {
                main.narrow {
                    h1 { "Vigie" }
                    p.error { (text) }
                    p { "Code " (status.as_u16()) ". " a href="/" { "Retour à l’accueil" } " · " a href="/connexion" { "Se connecter" } }
                }
            }
        }
    }
}

/// The page behind a link sent by email (approve a notice, acknowledge an alert): the action
/// needs a click on its button, never the mere opening of the link.
pub(crate) fn confirm_link(title: &str, text: &str, action: &str, token: &str, button: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="fr" {
            (head(title))
            body.bare {
                main.narrow {
                    h1 { (title) }
                    p { (text) }
                    form method="post" action=(action) {
                        input type="hidden" name="token" value=(token);
                        button type="submit" { (button) }
                    }
                }
            }
        }
    }
}

/// A one-message page (the outcome of an emailed link).
pub(crate) fn message_page(title: &str, text: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="fr" {
            (head(title))
            body.bare {
                main.narrow {
                    h1 { (title) }
                    p role="status" { (text) }
                    p { a href="/incidents" { "Voir les incidents et avis" } }
                }
            }
        }
    }
}

/// The login form; `token` is the double-submit CSRF token also set as a cookie.
pub(crate) fn login(token: &str, next: Option<&str>, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="fr" {
            (head("Connexion"))
            body.bare {
                main.narrow {
                    h1 { "Vigie — connexion" }
                    p { "Supervision de l’ENT des écoles de la ville." }
                    @if let Some(e) = error { p.error role="alert" { (e) } }
                    form.login method="post" action="/connexion" {
                        input type="hidden" name="csrf" value=(token);
                        @if let Some(n) = next { input type="hidden" name="suite" value=(n); }
                        label for="utilisateur" { "Identifiant" }
                        input id="utilisateur" name="utilisateur" autocomplete="username" required autofocus;
                        label for="mot_de_passe" { "Mot de passe" }
                        input id="mot_de_passe" name="mot_de_passe" type="password" autocomplete="current-password" required;
                        label for="code" { "Code à usage unique (si votre compte en a un)" }
                        input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}";
                        button type="submit" { "Se connecter" }
                    }
                }
            }
        }
    }
}

pub(crate) fn alert_json(a: &alerting::Alert) -> serde_json::Value {
    serde_json::json!({
        "id": a.id, "rule": a.rule, "title": a.title, "key": a.key,
        "state": match a.state {
            alerting::AlertState::Pending => "pending",
            alerting::AlertState::Firing => "firing",
            alerting::AlertState::Resolved => "resolved",
        },
        "severity": severity_fr(a.severity), "first_seen": a.first_seen, "last_seen": a.last_seen,
        "count": a.count, "cctp_class": a.cctp_class.label(), "source_ip": a.source_ip,
        "acknowledged_by": a.acknowledged.as_ref().map(|(by, _)| by),
        "acknowledged_at": a.acknowledged.as_ref().map(|(_, at)| at),
    })
}

fn alerts_table(ctx: &Ctx<'_>, alerts: &[alerting::Alert]) -> Markup {
    let can_ack = matches!(ctx.session.user.role, crate::users::Role::OnCall | crate::users::Role::Admin);
    html! {
        @if alerts.is_empty() {
            p { "Aucune alerte." }
        } @else {
            table {
                thead { tr { th { "État" } th { "Gravité" } th { "Alerte" } th { "Concerne" } th { "Depuis" } th.num { "Nombre" } th { "Classe CCTP" } th { "Prise en compte" } } }
                tbody {
                    @for a in alerts {
                        tr id={"alerte-" (a.id)} {
                            @match a.state {
                                alerting::AlertState::Pending => td.muted { "en attente" },
                                alerting::AlertState::Firing => td.firing { "en cours" },
                                alerting::AlertState::Resolved => td.resolved { "résolue" },
                            }
                            td { (severity_fr(a.severity)) }
                            td { (a.title) }
                            td { code { (a.key) } }
                            td { (ctx.date(a.first_seen)) }
                            td.num { (a.count) }
                            td { (a.cctp_class.label()) }
                            td {
                                @if let Some((by, at)) = &a.acknowledged {
                                    (by) br; small.muted { (ctx.date(*at)) }
                                } @else if a.state == alerting::AlertState::Firing && can_ack {
                                    form method="post" action={"/alertes/" (a.id) "/prise-en-compte"} {
                                        (csrf_field(ctx)) button type="submit" { "Je m’en occupe" }
                                    }
                                } @else { "—" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The overview's figures.
#[derive(Debug)]
pub(crate) struct Overview {
    pub(crate) stages: StageCounts,
    pub(crate) tasks: BTreeMap<String, bool>,
    pub(crate) alerts: Vec<alerting::Alert>,
    pub(crate) up_now: Option<Option<bool>>,
    pub(crate) month: Option<MonthAvailability>,
    pub(crate) today: Date,
    pub(crate) logins_today: Option<u64>,
    pub(crate) incidents: Option<Vec<IncidentView>>,
}

pub(crate) fn overview(ctx: &Ctx<'_>, d: &Overview) -> Markup {
    let firing: Vec<_> = d.alerts.iter().filter(|a| a.state == alerting::AlertState::Firing).cloned().collect();
    let today = d.month.as_ref().and_then(|m| m.days.iter().find(|x| x.day == d.today));
    layout(
        ctx,
        "Vue d’ensemble",
        false,
        html! {
            section.kpis {
                div.kpi {
                    span.label { "ENT maintenant" }
                    @match d.up_now {
                        Some(Some(true)) => b.up id="ent-etat" { "en service" },
                        Some(Some(false)) => b.down id="ent-etat" { "interrompu" },
                        Some(None) => b id="ent-etat" { "pas encore mesuré" },
                        None => b.muted id="ent-etat" { "non configuré" },
                    }
                }
                div.kpi {
                    span.label { "Disponibilité aujourd’hui (fenêtre 21 h)" }
                    @match today { Some(t) => b.up[!t.breach].down[t.breach] { (percent(t.ratio)) }, None => b.muted { "non configuré" } }
                }
                div.kpi {
                    span.label { "Disponibilité du mois" @if let Some(m) = &d.month { " (exigé : " (percent(m.required)) ")" } }
                    @match &d.month { Some(m) => b.up[m.ratio >= m.required].down[m.ratio < m.required] { (percent(m.ratio)) }, None => b.muted { "non configuré" } }
                }
                div.kpi { span.label { "Alertes en cours" } b.down[!firing.is_empty()] id="alertes-en-cours" { (firing.len()) } }
                div.kpi {
                    span.label { "Incidents ouverts" }
                    @match &d.incidents { Some(i) => b { (i.iter().filter(|x| x.resolved.is_none()).count()) }, None => b.muted { "non configuré" } }
                }
            }
            section.kpis {
                div.kpi { span.label { "Événements lus" } b id="evenements-lus" { (num(d.stages.parsed as f64)) } }
                div.kpi { span.label { "Événements analysés" } b { (num(d.stages.analyzed as f64)) } }
                div.kpi { span.label { "Détections" } b id="detections" { (num(d.stages.detections as f64)) } }
                div.kpi {
                    span.label { "Connexions à l’ENT aujourd’hui" }
                    @match d.logins_today { Some(n) => b { (num(n as f64)) }, None => b.muted { "non configuré" } }
                }
            }
            section {
                h2 { "Alertes en cours" }
                (alerts_table(ctx, &firing))
            }
            section {
                h2 { "Dernières détections" }
                (alerts_table(ctx, &d.alerts.iter().take(10).cloned().collect::<Vec<_>>()))
            }
            section {
                h2 { "État des composants" }
                table {
                    @for (task, up) in &d.tasks {
                        tr { td { (task) } @if *up { td.up { "en marche" } } @else { td.down { "arrêté" } } }
                    }
                }
            }
        },
    )
}

fn month_name(day: Date) -> String {
    format!("{} {}", analyzer::month_fr(day.month()), day.year())
}

pub(crate) fn availability(ctx: &Ctx<'_>, day: Date, month: Option<&MonthAvailability>) -> Markup {
    let prev = day.first_of_month().checked_sub(jiff::Span::new().days(1)).unwrap_or(day);
    let next = day.last_of_month().checked_add(jiff::Span::new().days(1)).unwrap_or(day);
    let link = |d: Date| format!("/disponibilite?mois={:04}-{:02}", d.year(), d.month());
    layout(
        ctx,
        "Disponibilité",
        false,
        html! {
            p.monthnav {
                a href=(link(prev)) { "← " (month_name(prev)) }
                strong { (month_name(day)) }
                a href=(link(next)) { (month_name(next)) " →" }
            }
            p { "Fenêtre contractuelle : 21 h sur 24, de 6 h à 3 h (heure de Paris), tous les jours. Les interruptions sont en rouge." }
            @match month {
                None => (not_configured("Le calcul de disponibilité")),
                Some(m) => {
                    section.kpis {
                        div.kpi { span.label { "Disponibilité du mois" } b.up[m.ratio >= m.required].down[m.ratio < m.required] id="dispo-mois" { (percent(m.ratio)) } }
                        div.kpi { span.label { "Exigence du CCTP" } b { (percent(m.required)) } }
                        div.kpi { span.label { "Jours en manquement" } b { (m.days.iter().filter(|x| x.breach).count()) } }
                    }
                    section {
                        table.days {
                            thead { tr { th { "Jour" } th { "Fenêtre 6 h – 3 h" } th.num { "Disponibilité" } th { "Manquement" } } }
                            tbody {
                                @for dd in &m.days {
                                    @if dd.window_start > ctx.now {
                                        tr.avenir {
                                            td { (dd.day.strftime("%d/%m")) }
                                            td.timeline { (svg::window(&format!("Fenêtre du {} (à venir)", dd.day), dd.window_start, dd.window_end, &[])) }
                                            td.num { "—" }
                                            td { "à venir" }
                                        }
                                    } @else if !dd.measured {
                                        tr.avenir {
                                            td { (dd.day.strftime("%d/%m")) }
                                            td.timeline { (svg::window(&format!("Fenêtre du {} (non mesurée)", dd.day), dd.window_start, dd.window_end, &[])) }
                                            td.num { "—" }
                                            td { "non mesuré" }
                                        }
                                    } @else {
                                    tr {
                                        td { (dd.day.strftime("%d/%m")) }
                                        td.timeline { (svg::window(&format!("Fenêtre du {}", dd.day), dd.window_start, dd.window_end, &dd.outages)) }
                                        td.num { (percent(dd.ratio)) }
                                        td { @if dd.breach { span.down { "oui" } } @else { "non" } }
                                    }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// Firewall denies by port, and the top offenders (address, country, ASN, denies).
pub(crate) type FirewallFigures = (Vec<(u16, u64)>, Vec<(String, String, u32, u64)>);

/// The security page's figures.
#[derive(Debug)]
pub(crate) struct SecurityData {
    pub(crate) alerts: Vec<alerting::Alert>,
    pub(crate) blocked: Vec<(std::net::IpAddr, analyzer::BlockEntry)>,
    /// Denies by port and top offenders, when the statistics stage runs.
    pub(crate) firewall: Option<FirewallFigures>,
    pub(crate) since: Timestamp,
}

/// Alert counts grouped by rule and severity, largest first.
pub(crate) fn detections_by_rule(alerts: &[alerting::Alert]) -> Vec<(String, &'static str, u64)> {
    let mut by: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    for a in alerts {
        *by.entry((a.title.clone(), severity_fr(a.severity))).or_default() += a.count;
    }
    let mut v: Vec<_> = by.into_iter().map(|((r, s), n)| (r, s, n)).collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.2));
    v
}

pub(crate) fn security(ctx: &Ctx<'_>, d: &SecurityData) -> Markup {
    let mut by: BTreeMap<(String, analyzer::Severity), u64> = BTreeMap::new();
    for a in &d.alerts {
        *by.entry((a.title.clone(), a.severity)).or_default() += a.count;
    }
    let mut rows: Vec<(String, f64, &'static str)> =
        by.iter().map(|((t, s), n)| (format!("{t} ({})", severity_fr(*s)), *n as f64, severity_color(*s))).collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut ips: BTreeMap<std::net::IpAddr, u64> = BTreeMap::new();
    for a in &d.alerts {
        if let Some(ip) = a.source_ip {
            *ips.entry(ip).or_default() += a.count;
        }
    }
    let mut ips: Vec<_> = ips.into_iter().collect();
    ips.sort_by_key(|e| std::cmp::Reverse(e.1));
    layout(
        ctx,
        "Sécurité",
        true,
        html! {
            section {
                h2 { "Détections par règle et gravité" }
                p.legend {
                    span.sw.crit {} "critique " span.sw.warn {} "avertissement " span.sw.info {} "information"
                }
                @if rows.is_empty() { p { "Aucune détection sur la période." } }
                @else { (svg::bars("Détections par règle et gravité", &rows, "")) }
            }
            section {
                h2 { "Adresses à l’origine des détections" }
                @if ips.is_empty() { p { "Aucune." } } @else {
                    table { thead { tr { th { "Adresse" } th.num { "Détections" } } }
                        tbody { @for (ip, n) in ips.iter().take(15) { tr { td { code { (ip) } } td.num { (n) } } } } }
                }
            }
            section {
                h2 { "Liste de blocage d’urgence" }
                @if d.blocked.is_empty() { p { "Aucune adresse bloquée." } } @else {
                    table id="liste-blocage" {
                        thead { tr { th { "Adresse" } th { "Motif" } th { "Gravité" } th { "Jusqu’au" } th.num { "Détections" } } }
                        tbody {
                            @for (ip, e) in &d.blocked {
                                tr { td { code { (ip) } } td { (e.title) } td { (severity_fr(e.severity)) } td { (ctx.date(e.expires)) } td.num { (e.detections) } }
                            }
                        }
                    }
                }
            }
            section {
                h2 { "Pare-feu : refus par port et adresses les plus refusées" }
                @match &d.firewall {
                    None => (not_configured("Le relevé statistique du pare-feu")),
                    Some((ports, offenders)) => {
                        @if ports.is_empty() { p { "Aucun refus sur la période." } } @else {
                            (svg::bars("Refus du pare-feu par port de destination",
                                &ports.iter().map(|(p, n)| (format!("port {p}"), *n as f64, svg::BLUE)).collect::<Vec<_>>(), "refus"))
                        }
                        @if !offenders.is_empty() {
                            table {
                                thead { tr { th { "Adresse" } th { "Pays" } th { "AS" } th.num { "Refus" } } }
                                tbody { @for (ip, country, asn, n) in offenders {
                                    tr { td { code { (ip) } } td { (if country.is_empty() { "—" } else { country }) } td { @if *asn > 0 { "AS" (asn) } @else { "—" } } td.num { (n) } }
                                } }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// What a panel shows.
#[derive(Debug)]
pub(crate) enum PanelValue {
    NotConfigured,
    /// The series (`None`: the store does not know it).
    Series(Option<Series>),
    Current(Vec<(String, f64)>),
}

/// A panel with its data.
#[derive(Debug)]
pub(crate) struct PanelData {
    pub(crate) panel: Panel,
    pub(crate) value: PanelValue,
}

pub(crate) fn panel_json(p: &PanelData) -> serde_json::Value {
    let value = match &p.value {
        PanelValue::NotConfigured => serde_json::json!({"configured": false}),
        PanelValue::Series(s) => serde_json::json!({"configured": true, "series": s}),
        PanelValue::Current(v) => serde_json::json!({"configured": true, "current": v}),
    };
    serde_json::json!({"panel": p.panel, "data": value})
}

fn panel(ctx: &Ctx<'_>, p: &PanelData) -> Markup {
    let range_start = ctx.now.checked_sub(jiff::SignedDuration::from_hours(ctx.range.1)).unwrap_or(ctx.now);
    // A series much younger than the range would be squeezed against the right edge: start the
    // chart at its first point (the axis says when that was).
    let first = match &p.value {
        PanelValue::Series(Some(s)) if s.points.len() >= 2 => s.points.first().map(|(t, _)| *t),
        _ => None,
    };
    let from = first.filter(|t| *t > range_start && *t < ctx.now).unwrap_or(range_start);
    html! {
        section.panel id={"panneau-" (p.panel.id)} {
            h2 { (p.panel.title) }
            @match &p.value {
                PanelValue::NotConfigured => (not_configured("La série de mesures")),
                PanelValue::Series(None) => p { "Pas encore de mesures pour cette série." },
                PanelValue::Series(Some(s)) => {
                    @let threshold = p.panel.threshold.map(|t| (t, p.panel.threshold_label.as_deref().unwrap_or("seuil")));
                    (svg::line(&p.panel.title, &s.points, &s.forecast, threshold, from, ctx.now, &p.panel.unit, ctx.tz))
                    @if let Some((_, last)) = s.points.last() { p { "Dernière valeur : " strong { (num(*last)) " " (p.panel.unit) } } }
                    @if let (Some((at, v)), Some((t, label))) = (s.forecast.last(), threshold) {
                        @if (v - t).abs() < 1e-6 * t.abs().max(1.0) { p.firing { "Au rythme actuel : " (label) " vers le " (ctx.date(*at)) "." } }
                    }
                },
                PanelValue::Current(values) => {
                    @if values.is_empty() { p { "Aucune valeur pour l’instant." } } @else {
                        table { tbody { @for (labels, v) in values {
                            tr { td { (if labels.is_empty() { "total" } else { labels }) } td.num { (num(*v)) " " (p.panel.unit) } }
                        } } }
                    }
                },
            }
        }
    }
}

pub(crate) fn saturation(ctx: &Ctx<'_>, panels: &[PanelData]) -> Markup {
    layout(
        ctx,
        "Saturation",
        true,
        html! {
            p { "Les panneaux de cette page sont définis dans des fichiers (" code { "dashboards/panels/*.toml" } ", et le dossier " code { "server.panels_dir" } ")." }
            div.grid { @for p in panels { (panel(ctx, p)) } }
        },
    )
}

/// The statistics of one period, pivoted per school.
#[derive(Debug, serde::Serialize)]
pub(crate) struct TrafficData {
    pub(crate) period: Period,
    pub(crate) start: Date,
    pub(crate) end: Date,
    pub(crate) schools: Vec<SchoolRow>,
    /// Unique users per category.
    pub(crate) unique_users: BTreeMap<String, u64>,
    /// Pupil connections per day, last 30 days.
    pub(crate) pupil_logins: Vec<(Date, u64)>,
    #[serde(skip)]
    sort: (String, bool),
}

/// One school's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct SchoolRow {
    pub(crate) uai: String,
    pub(crate) name: String,
    pub(crate) logins: u64,
    pub(crate) pupil_logins: u64,
    pub(crate) articles: u64,
    pub(crate) requests: u64,
}

const SORT_KEYS: &[(&str, &str)] = &[
    ("ecole", "École"),
    ("connexions", "Connexions"),
    ("eleves", "Connexions d’élèves"),
    ("articles", "Articles de blog"),
    ("requetes", "Requêtes"),
];

impl TrafficData {
    pub(crate) fn new(period: Period, day: Date, rows: &[StatRow], pupils: Vec<(Date, u64)>, q: &TrafficQuery) -> Self {
        let (start, end) = period.bounds(day);
        let mut schools: BTreeMap<String, SchoolRow> = BTreeMap::new();
        let mut unique_users: BTreeMap<String, u64> = BTreeMap::new();
        for r in rows {
            if r.kind == KIND_UNIQUE_USERS {
                let cat = if r.category.is_empty() { "inconnue".to_owned() } else { r.category.clone() };
                *unique_users.entry(cat).or_default() += r.count;
                continue;
            }
            let e = schools.entry(r.school.clone()).or_insert_with(|| SchoolRow {
                uai: r.school.clone(),
                name: if r.school.is_empty() { "(hors réseau d’école)".into() } else { r.school_name.clone() },
                logins: 0,
                pupil_logins: 0,
                articles: 0,
                requests: 0,
            });
            match r.kind.as_str() {
                KIND_LOGIN => {
                    e.logins += r.count;
                    if r.category == "eleve" {
                        e.pupil_logins += r.count;
                    }
                }
                KIND_ARTICLE => e.articles += r.count,
                KIND_REQUEST => e.requests += r.count,
                _ => {}
            }
        }
        let key =
            q.tri.clone().filter(|k| SORT_KEYS.iter().any(|(s, _)| s == k)).unwrap_or_else(|| "connexions".into());
        let asc = q.ordre.as_deref() == Some("asc");
        let mut schools: Vec<SchoolRow> = schools.into_values().collect();
        schools.sort_by(|a, b| {
            let o = match key.as_str() {
                "ecole" => a.name.cmp(&b.name),
                "eleves" => a.pupil_logins.cmp(&b.pupil_logins),
                "articles" => a.articles.cmp(&b.articles),
                "requetes" => a.requests.cmp(&b.requests),
                _ => a.logins.cmp(&b.logins),
            };
            if asc { o } else { o.reverse() }
        });
        // Each of the 30 days up to `day`, those without a connection as zero.
        let by_day: BTreeMap<Date, u64> = pupils.into_iter().collect();
        let pupil_logins = (0..30)
            .rev()
            .filter_map(|back| day.checked_sub(jiff::Span::new().days(back)).ok())
            .map(|d| (d, by_day.get(&d).copied().unwrap_or(0)))
            .collect();
        TrafficData { period, start, end, schools, unique_users, pupil_logins, sort: (key, asc) }
    }

    /// The table as CSV (semicolons, as French spreadsheets expect; UTF-8 with a BOM).
    pub(crate) fn csv(&self) -> String {
        let field = |s: &str| {
            if s.contains([';', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
        };
        let mut out =
            String::from("\u{feff}uai;ecole;connexions;connexions_eleves;articles_blog;requetes;periode;debut;fin\n");
        for s in &self.schools {
            out.push_str(&format!(
                "{};{};{};{};{};{};{};{};{}\n",
                field(&s.uai),
                field(&s.name),
                s.logins,
                s.pupil_logins,
                s.articles,
                s.requests,
                self.period.as_str(),
                self.start,
                self.end
            ));
        }
        out
    }
}

/// A user category as the statistics store it, as the page says it.
fn category_fr(category: &str) -> &str {
    match category {
        "eleve" => "élèves",
        "enseignant" => "enseignants",
        "parent" => "parents",
        "personnel" => "personnels",
        other => other,
    }
}

fn period_fr(p: Period) -> &'static str {
    match p {
        Period::Day => "jour",
        Period::Week => "semaine",
        Period::Month => "mois",
        Period::SchoolYear => "année scolaire",
    }
}

pub(crate) fn traffic(ctx: &Ctx<'_>, d: Option<&TrafficData>) -> Markup {
    layout(
        ctx,
        "Trafic et statistiques",
        false,
        html! {
            @match d {
                None => (not_configured("Le relevé statistique")),
                Some(d) => {
                    form.picker method="get" action="/trafic" {
                        label for="p" { "Période" }
                        select id="p" name="periode" {
                            @for p in Period::ALL { option value=(p.as_str()) selected[p == d.period] { (period_fr(p)) } }
                        }
                        label for="date" { "contenant le" }
                        input id="date" type="date" name="date" value=(d.start.max(d.end.min(ctx.now.to_zoned_datetime(ctx.tz.clone()).date())));
                        button type="submit" { "Afficher" }
                        a.button href={"/trafic.csv?periode=" (d.period.as_str()) "&date=" (d.start)} download { "Exporter en CSV" }
                    }
                    p { (period_fr(d.period)) " du " (d.start.strftime("%d/%m/%Y")) " au " (d.end.strftime("%d/%m/%Y")) "." }
                    section.kpis {
                        @for (cat, n) in &d.unique_users {
                            div.kpi { span.label { "Utilisateurs uniques — " (category_fr(cat)) } b { (num(*n as f64)) } }
                        }
                        @if d.unique_users.is_empty() { p { "Aucun utilisateur identifié sur la période." } }
                    }
                    section {
                        h2 { "Connexions d’élèves par jour (30 derniers jours)" }
                        @if d.pupil_logins.iter().all(|(_, n)| *n == 0) { p { "Aucune connexion d’élève enregistrée." } } @else {
                            (svg::columns("Connexions d’élèves par jour",
                                &d.pupil_logins.iter().map(|(day, n)| (day.strftime("%d/%m").to_string(), *n as f64)).collect::<Vec<_>>(), ""))
                        }
                    }
                    section {
                        h2 { "Par école" }
                        table id="stats-ecoles" {
                            thead { tr {
                                @for (key, label) in SORT_KEYS {
                                    @let asc = d.sort.0 == *key && !d.sort.1;
                                    th.num[*key != "ecole"] aria-sort=(if d.sort.0 == *key { if d.sort.1 { "ascending" } else { "descending" } } else { "none" }) {
                                        a href={"/trafic?periode=" (d.period.as_str()) "&date=" (d.start) "&tri=" (key) "&ordre=" (if asc { "asc" } else { "desc" })} { (label) }
                                    }
                                }
                            } }
                            tbody {
                                @for s in &d.schools {
                                    tr { td { (s.name) " " small { (s.uai) } } td.num { (num(s.logins as f64)) } td.num { (num(s.pupil_logins as f64)) } td.num { (num(s.articles as f64)) } td.num { (num(s.requests as f64)) } }
                                }
                            }
                        }
                        @if d.schools.is_empty() { p { "Aucune donnée sur la période." } }
                    }
                }
            }
        },
    )
}

/// The incidents page's data.
#[derive(Debug)]
pub(crate) struct IncidentsData {
    pub(crate) alerts: Vec<alerting::Alert>,
    pub(crate) silences: Vec<alerting::Silence>,
    pub(crate) incidents: Option<Vec<IncidentView>>,
    pub(crate) notices: Option<Vec<NoticeView>>,
}

fn countdown(now: Timestamp, deadline: Timestamp) -> String {
    let secs = deadline.as_second() - now.as_second();
    let (sign, secs) = if secs < 0 { ("dépassé de ", -secs) } else { ("reste ", secs) };
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if d > 0 { format!("{sign}{d} j {h} h") } else { format!("{sign}{h} h {m:02} min") }
}

pub(crate) fn incidents(ctx: &Ctx<'_>, d: &IncidentsData) -> Markup {
    let role = ctx.session.user.role;
    let can_approve = matches!(role, crate::users::Role::Approver | crate::users::Role::Admin);
    let can_silence = matches!(role, crate::users::Role::OnCall | crate::users::Role::Admin);
    layout(
        ctx,
        "Incidents et avis",
        false,
        html! {
            section {
                h2 { "Incidents" }
                @match &d.incidents {
                    None => (not_configured("Le suivi des incidents")),
                    Some(list) if list.is_empty() => p { "Aucun incident." },
                    Some(list) => table {
                        thead { tr { th { "Incident" } th { "Classe CCTP" } th { "Ouvert le" } th { "Échéance" } th { "État" } } }
                        tbody { @for i in list { tr {
                            td { (i.title) } td { (i.cctp_class) } td { (ctx.date(i.opened)) }
                            td { @match i.deadline { Some(dl) => { (ctx.date(dl)) br; small.down[dl < ctx.now] { (countdown(ctx.now, dl)) } }, None => "—" } }
                            td { @match i.resolved { Some(r) => { "résolu le " (ctx.date(r)) }, None => span.firing { "ouvert" } } }
                        } } }
                    },
                }
            }
            section id="avis" {
                h2 { "Avis d’interruption aux directeurs d’école" }
                @match &d.notices {
                    None => (not_configured("Le circuit des avis d’interruption")),
                    Some(list) if list.is_empty() => p { "Aucun avis." },
                    Some(list) => @for n in list {
                        article.notice id={"avis-" (n.id)} {
                            h3 { (n.subject) }
                            p.muted {
                                (n.kind) " — " (n.service) " — début " (ctx.date(n.starts_at)) ", fin prévue " (ctx.date(n.expected_end))
                                @if let Some(e) = n.ended_at { ", terminée le " (ctx.date(e)) }
                            }
                            @match &n.approved {
                                _ if n.cancelled => p.muted { "Terminée avant validation : les directeurs n’ont pas été prévenus." },
                                Some((at, by)) => p.muted { "Validé le " (ctx.date(*at)) " par " (by) " — " (n.recipients) " destinataires." },
                                None if can_approve && n.ended_at.is_none() => {
                                    form method="post" action={"/incidents/avis/" (n.id) "/approuver"} {
                                        (csrf_field(ctx))
                                        p.firing { "À valider — préparé le " (ctx.date(n.created)) ", " (n.recipients) " destinataires." }
                                        label for={"fin-" (n.id)} { "Fin prévue (heure de Paris)" }
                                        input id={"fin-" (n.id)} name="fin_prevue" type="datetime-local" value=(ctx.local_input(n.expected_end));
                                        label for={"message-" (n.id)} { "Message ajouté pour les directeurs" }
                                        textarea id={"message-" (n.id)} name="message" rows="4" { (n.message) }
                                        button type="submit" { "Valider et envoyer" }
                                    }
                                }
                                None => p.firing { "En attente de validation par le service informatique." },
                            }
                            details {
                                summary { "Courriel reçu par un directeur (exemple)" }
                                pre { (n.body) }
                            }
                        }
                    },
                }
            }
            section id="silences" {
                h2 { "Silences" }
                @if d.silences.is_empty() { p { "Aucun silence actif." } } @else {
                    table { thead { tr { th { "Règle" } th { "Clé" } th { "Jusqu’au" } th { "Par" } th { "Motif" } @if can_silence { th {} } } }
                        tbody { @for s in &d.silences { tr {
                            td { (s.matcher.rule.as_deref().unwrap_or("toutes")) } td { (s.matcher.key.as_deref().unwrap_or("toutes")) }
                            td { (ctx.date(s.until)) } td { (s.created_by) } td { (s.reason) }
                            @if can_silence { td { form method="post" action={"/alertes/silences/" (s.id) "/lever"} { (csrf_field(ctx)) button type="submit" { "Lever" } } } }
                        } } }
                    }
                }
                @if can_silence {
                    form.inline method="post" action="/alertes/silences" {
                        (csrf_field(ctx))
                        label for="regle" { "Règle" } input id="regle" name="regle" placeholder="web.sqli";
                        label for="cle" { "Clé" } input id="cle" name="cle" placeholder="source.ip=203.0.113.9";
                        label for="duree" { "Durée (h)" } input id="duree" name="duree_heures" type="number" min="1" max="720" value="4" required;
                        label for="motif" { "Motif" } input id="motif" name="motif" required;
                        button type="submit" { "Mettre en silence" }
                    }
                }
            }
            section {
                h2 { "Historique des alertes" }
                (alerts_table(ctx, &d.alerts))
            }
        },
    )
}

pub(crate) fn requisitions(
    ctx: &Ctx<'_>,
    configured: bool,
    form: Option<&SearchForm>,
    result: Option<Result<&RequisitionResult, &str>>,
) -> Markup {
    let empty = SearchForm::default();
    let f = form.unwrap_or(&empty);
    layout(
        ctx,
        "Réquisitions",
        false,
        html! {
            p { "Recherche dans l’archive légale des données de connexion (décret 2021-1362), conservées un an. "
                "Chaque recherche est enregistrée au journal d’audit avec sa référence." }
            @if !configured { (not_configured("La recherche sur réquisition")) }
            form.search method="post" action="/requisitions/recherche" {
                (csrf_field(ctx))
                fieldset {
                    legend { "La réquisition (obligatoire)" }
                    label for="autorite" { "Autorité requérante" }
                    input id="autorite" name="autorite" required value=(f.autorite) placeholder="Parquet de Lyon, OPJ …";
                    label for="procedure" { "Numéro de procédure (PV)" }
                    input id="procedure" name="procedure" required value=(f.procedure) placeholder="PV 2025/1234";
                    label for="fondement" { "Fondement juridique" }
                    input id="fondement" name="fondement" required list="fondements" value=(f.fondement) placeholder="art. 60-1 CPP";
                    datalist id="fondements" { option value="art. 60-1 CPP" {} option value="art. 77-1-1 CPP" {} option value="art. 99-3 CPP" {} }
                    label for="date_requisition" { "Date de la réquisition" }
                    input id="date_requisition" name="date_requisition" type="date" required value=(f.date_requisition);
                }
                fieldset {
                    legend { "La recherche : une adresse, un compte ou une école" }
                    label for="debut" { "Début (heure de Paris)" }
                    input id="debut" name="debut" type="datetime-local" required value=(f.debut);
                    label for="fin" { "Fin (heure de Paris)" }
                    input id="fin" name="fin" type="datetime-local" required value=(f.fin);
                    label for="ip" { "Adresse IP ou plage" }
                    input id="ip" name="ip" value=(f.ip.as_deref().unwrap_or_default()) placeholder="203.0.113.9 ou 203.0.113.0/24";
                    label for="port" { "Port source (derrière un NAT)" }
                    input id="port" name="port" inputmode="numeric" value=(f.port.as_deref().unwrap_or_default());
                    label for="compte" { "Compte" }
                    input id="compte" name="compte" value=(f.compte.as_deref().unwrap_or_default());
                    label for="ecole" { "École (UAI)" }
                    input id="ecole" name="ecole" value=(f.ecole.as_deref().unwrap_or_default()) placeholder="0691234A";
                }
                button type="submit" disabled[!configured] { "Rechercher" }
            }
            @match result {
                None => {},
                Some(Err(e)) => p.error role="alert" { (e) },
                Some(Ok(r)) => section id="resultats" {
                    h2 { (r.total) " enregistrement" @if r.total != 1 { "s" } @if r.truncated { " (les " (r.records.len()) " premiers affichés ; l’export contient tout)" } }
                    p { a.button href={"/requisitions/export/" (r.search_id)} download { "Télécharger l’export (avec empreinte d’intégrité)" } }
                    table {
                        thead { tr { th { "Date" } th { "Adresse" } th.num { "Port" } th { "Compte" } th { "École" } th { "Nature" } } }
                        tbody { @for rec in &r.records { tr {
                            td { (ctx.precise(rec.timestamp)) } td { @if let Some(ip) = rec.source_ip { code { (ip) } } }
                            td.num { @if let Some(p) = rec.source_port { (p) } } td { (rec.user.as_deref().unwrap_or("—")) }
                            td { (rec.school.as_deref().unwrap_or("—")) } td { (rec.kind) }
                        } } }
                    }
                },
            }
        },
    )
}

/// An audit action, in French.
fn action_fr(action: &str) -> &str {
    match action {
        "search" => "recherche",
        "export" => "export",
        "audit-read" => "lecture du journal",
        "hold" => "gel des données",
        "release" => "levée du gel",
        other => other,
    }
}

pub(crate) fn audit(ctx: &Ctx<'_>, entries: Option<&[AuditEntry]>) -> Markup {
    layout(
        ctx,
        "Journal d’audit",
        false,
        html! {
            p { "Chaque recherche sur réquisition, chaque export et chaque lecture de ce journal, avec l’opérateur, la référence et la requête. "
                "Les entrées sont chaînées et signées : le journal est vérifié à chaque lecture." }
            @match entries {
                None => (not_configured("Le journal d’audit des réquisitions")),
                Some([]) => p { "Aucune recherche enregistrée." },
                Some(list) => table {
                    thead { tr { th.num { "N°" } th { "Date" } th { "Opérateur" } th { "Action" } th { "Référence" } th { "Requête" } th.num { "Résultats" } th { "Empreinte de l’export" } } }
                    tbody { @for e in list { tr {
                        td.num { (e.seq) } td.nowrap { (ctx.precise(e.at)) } td { (e.operator) } td { (action_fr(&e.action)) } td { (e.reference) } td { code { (e.query) } }
                        td.num { @if let Some(n) = e.results { (n) } @else { "—" } }
                        td { @if let Some(h) = &e.export_sha256 { code.hash { (h) } } @else { "—" } }
                    } } }
                },
            }
        },
    )
}

/// Vigie's own health.
#[derive(Debug)]
pub(crate) struct HealthData {
    pub(crate) stages: StageCounts,
    pub(crate) tasks: BTreeMap<String, bool>,
    pub(crate) samples: Vec<collector::Sample>,
    pub(crate) panels: Vec<PanelData>,
}

pub(crate) fn health(ctx: &Ctx<'_>, d: &HealthData) -> Markup {
    let value = |name: &str| d.samples.iter().filter(|s| s.name == name).map(|s| s.value).sum::<f64>();
    layout(
        ctx,
        "Santé de Vigie",
        false,
        html! {
            section.kpis {
                div.kpi { span.label { "Événements lus" } b id="sante-lus" { (num(d.stages.parsed as f64)) } }
                div.kpi { span.label { "Détections" } b { (num(d.stages.detections as f64)) } }
                div.kpi { span.label { "Lignes illisibles (lettres mortes)" } b { (num(value("vigie_parse_failures_total"))) } }
                div.kpi { span.label { "Enregistrements archivés" } b id="sante-archive" { (num(value("vigie_archive_records_total"))) } }
                div.kpi { span.label { "Courriels en attente" } b { (num(value("vigie_notifications_queued"))) } }
            }
            section {
                h2 { "Tâches" }
                table { @for (task, up) in &d.tasks { tr { td { (task) } @if *up { td.up { "en marche" } } @else { td.down { "arrêtée" } } } } }
            }
            div.grid { @for p in &d.panels { (panel(ctx, p)) } }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn availability_is_rounded_down() {
        assert_eq!(percent(1.0), "100 %");
        assert_eq!(percent(0.99993), "99,9 %", "a one-minute outage is not « 100 % »");
        assert_eq!(percent(0.875), "87,5 %");
        assert_eq!(percent(0.0), "0 %");
    }

    #[test]
    fn pupil_chart_has_each_of_the_last_30_days() {
        let day: Date = "2025-04-10".parse().unwrap();
        let seen: Date = "2025-04-08".parse().unwrap();
        let d = TrafficData::new(Period::Month, day, &[], vec![(seen, 7)], &TrafficQuery::default());
        assert_eq!(d.pupil_logins.len(), 30);
        assert_eq!(d.pupil_logins.first().unwrap().0, "2025-03-12".parse::<Date>().unwrap());
        assert_eq!(d.pupil_logins.last().unwrap(), &(day, 0));
        assert_eq!(d.pupil_logins.iter().map(|(_, n)| n).sum::<u64>(), 7);
        assert_eq!(d.pupil_logins[27], (seen, 7));
        assert_eq!(category_fr("eleve"), "élèves");
        assert_eq!(category_fr("inconnue"), "inconnue");
    }
}
