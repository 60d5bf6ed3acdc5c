//! HTML pages, in French, for the city's IT service and on-call. Rendered with maud, which
//! escapes every interpolated value.

use std::collections::BTreeMap;

use collector::PipelineMetrics;
use maud::{DOCTYPE, Markup, html};

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

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1b1b1b;background:#f6f6f6}
header{background:#000091;color:#fff;padding:12px 24px}header h1{margin:0;font-size:1.3rem}
main{padding:16px 24px}section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px 16px;margin-bottom:16px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eee;font-size:.92rem}
.firing{color:#b00020;font-weight:600}.resolved{color:#2e7d32}.kpi{display:inline-block;margin-right:32px}
.kpi b{display:block;font-size:1.6rem}.down{color:#b00020}";

/// The severity as the city's staff read it.
fn severity_fr(severity: analyzer::Severity) -> &'static str {
    match severity {
        analyzer::Severity::Info => "information",
        analyzer::Severity::Warning => "avertissement",
        analyzer::Severity::Critical => "critique",
    }
}

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="fr" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content="10";
                title { (title) " — Vigie" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header { h1 { "Vigie — supervision de l’ENT" } }
                main { (body) }
            }
        }
    }
}

pub(crate) fn overview(
    stages: &StageCounts,
    tasks: &BTreeMap<String, bool>,
    alerts: &[alerting::Alert],
    now: jiff::Timestamp,
    tz: &jiff::tz::TimeZone,
) -> Markup {
    let firing = alerts.iter().filter(|a| a.state == alerting::AlertState::Firing).count();
    layout(
        "Vue d’ensemble",
        html! {
            h2 { "Vue d’ensemble" }
            p { "Mis à jour le " (alerting::format_date_fr(now, tz)) "." }
            section {
                div.kpi { b { (stages.parsed) } "événements lus" }
                div.kpi { b { (stages.analyzed) } "événements analysés" }
                div.kpi { b { (stages.detections) } "détections" }
                div.kpi { b { (firing) } "alertes en cours" }
            }
            section {
                h3 { "Alertes récentes" }
                @if alerts.is_empty() {
                    p { "Aucune alerte." }
                } @else {
                    table {
                        thead { tr { th { "État" } th { "Gravité" } th { "Alerte" } th { "Concerne" } th { "Depuis" } th { "Nombre" } th { "Classe CCTP" } } }
                        tbody {
                            @for a in alerts {
                                tr {
                                    @match a.state {
                                        alerting::AlertState::Firing => td.firing { "en cours" },
                                        alerting::AlertState::Resolved => td.resolved { "résolue" },
                                    }
                                    td { (severity_fr(a.severity)) }
                                    td { (a.title) }
                                    td { (a.key) }
                                    td { (alerting::format_date_fr(a.first_seen, tz)) }
                                    td { (a.count) }
                                    td { (a.cctp_class.label()) }
                                }
                            }
                        }
                    }
                }
            }
            section {
                h3 { "État des composants" }
                table {
                    @for (task, up) in tasks {
                        tr { td { (task) } @if *up { td { "en marche" } } @else { td.down { "arrêté" } } }
                    }
                }
            }
        },
    )
}
