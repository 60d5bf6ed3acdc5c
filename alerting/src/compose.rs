//! The emails sent to the on-call engineer, in French: what, where, since when, how often.

use jiff::Timestamp;

use analyzer::format_date_fr;

use crate::french::severity_fr;
use crate::outbox::Email;
use crate::store::{Alert, AlertPolicy};

/// Which notification of an alert an email is; each has its own Message-ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notification {
    Firing,
    /// The n-th reminder (1-based) of a still-firing alert.
    Reminder(u32),
    Resolved,
}

impl Notification {
    fn id_part(self) -> String {
        match self {
            Notification::Firing => "firing".to_owned(),
            Notification::Reminder(n) => format!("reminder-{n}"),
            Notification::Resolved => "resolved".to_owned(),
        }
    }
}

/// The domain of the sender's address, for Message-IDs (`vigie@ville.fr` → `ville.fr`).
pub(crate) fn sender_domain(from: &str) -> &str {
    let addr = from.rsplit_once('<').map_or(from, |(_, rest)| rest.trim_end_matches('>'));
    addr.rsplit_once('@').map_or("vigie.invalid", |(_, d)| d.trim())
}

/// The deterministic Message-ID of one notification of one alert. The first-seen instant is
/// part of it so that ids stay unique if the database is ever recreated and alert ids restart.
pub(crate) fn message_id(alert: &Alert, kind: Notification, from: &str) -> String {
    format!(
        "<vigie.alert-{}.{}.{}@{}>",
        alert.id,
        alert.first_seen.as_millisecond(),
        kind.id_part(),
        sender_domain(from)
    )
}

/// Where the alert points: the source IP if there is one, else the grouping key.
fn place(alert: &Alert) -> String {
    alert.source_ip.map_or_else(|| alert.key.clone(), |ip| ip.to_string())
}

/// `1 h 12 min`, `3 min`, `2 j 4 h` — how long an alert lasted.
fn duration_fr(from: Timestamp, to: Timestamp) -> String {
    crate::french::duration_fr(to.duration_since(from))
}

/// The email for `kind` of `alert`, composed at `now`.
pub(crate) fn compose(alert: &Alert, kind: Notification, policy: &AlertPolicy, now: Timestamp) -> Email {
    let tz = &policy.time_zone;
    let severity = severity_fr(alert.severity);
    let subject = match kind {
        Notification::Firing => format!("[Vigie] {severity} — {} ({})", alert.title, place(alert)),
        Notification::Reminder(_) => {
            format!("[Vigie] RAPPEL {severity} — {} ({})", alert.title, place(alert))
        }
        Notification::Resolved => format!("[Vigie] RÉSOLU — {} ({})", alert.title, place(alert)),
    };

    let mut body = String::new();
    let headline = match kind {
        Notification::Firing => format!("Nouvelle alerte {severity} n° {}", alert.id),
        Notification::Reminder(_) => {
            format!("Rappel : l'alerte {severity} n° {} est toujours en cours", alert.id)
        }
        Notification::Resolved => format!(
            "L'alerte n° {} est résolue : plus aucune détection depuis {}",
            alert.id,
            duration_fr(alert.last_seen, now)
        ),
    };
    body.push_str(&headline);
    body.push_str("\n\nQuoi\n");
    body.push_str(&format!("  {}\n", alert.title));
    if !alert.description.is_empty() {
        body.push_str(&format!("  {}\n", alert.description));
    }
    body.push_str("\nOù\n");
    body.push_str(&format!("  Regroupement : {}\n", alert.key));
    if let Some(ip) = alert.source_ip {
        body.push_str(&format!("  Adresse IP source : {ip}\n"));
    }
    if let Some(user) = &alert.user_name {
        body.push_str(&format!("  Compte : {user}\n"));
    }
    body.push_str("\nDepuis quand\n");
    body.push_str(&format!("  Première détection : {} (heure de Paris)\n", format_date_fr(alert.first_seen, tz)));
    body.push_str(&format!("  Dernière détection : {}\n", format_date_fr(alert.last_seen, tz)));
    if let (Notification::Resolved, Some(at)) = (kind, alert.resolved_at) {
        body.push_str(&format!("  Résolue : {}\n", format_date_fr(at, tz)));
    }
    body.push_str(&format!("  Nombre de détections : {}\n", alert.count));
    body.push_str("\nClassement\n");
    body.push_str(&format!("  Gravité : {severity}\n"));
    body.push_str(&format!("  Classe d'incident (CCTP) : {}\n", alert.cctp_class.terms()));
    if let Some(mitre) = &alert.mitre {
        body.push_str(&format!("  MITRE ATT&CK : {mitre}\n"));
    }
    body.push_str("\nPreuve (dernière détection)\n");
    for line in alert.last_evidence.lines() {
        body.push_str(&format!("  {line}\n"));
    }
    body.push_str(&format!("\nRègle : {}\nIdentifiant de l'alerte : {}\n", alert.rule, alert.id));
    let ack_url = match (kind, &policy.ack) {
        (Notification::Firing | Notification::Reminder(_), Some(links)) => {
            let expires = now
                .checked_add(jiff::SignedDuration::try_from(links.valid_for).unwrap_or(jiff::SignedDuration::MAX))
                .unwrap_or(Timestamp::MAX);
            let token = links.key.sign(&crate::token::Claims {
                action: "ack".into(),
                subject: alert.id,
                revision: 0,
                who: policy.on_call.join(", "),
                expires,
            });
            Some(format!("{}/alerts/ack?token={token}", links.base_url.trim_end_matches('/')))
        }
        _ => None,
    };
    if let Some(url) = &ack_url {
        body.push_str(&format!("\nPrendre en compte (arrête les rappels, enregistre qui s'en occupe) :\n{url}\n"));
    }
    body.push_str("\n-- \nVigie, supervision de l'ENT\n");

    let first = message_id(alert, Notification::Firing, &policy.from);
    Email {
        message_id: message_id(alert, kind, &policy.from),
        in_reply_to: (kind != Notification::Firing).then_some(first),
        alert_id: Some(alert.id),
        from: policy.from.clone(),
        to: policy.recipients(alert),
        html: alert_html(alert, kind, &subject, &headline, ack_url.as_deref(), tz),
        subject,
        body,
        notice_id: None,
        school: None,
        attachments: Vec::new(),
    }
}

/// The alert email's HTML part, laid out like its text part; `None` (text only) if the
/// template fails, which its tests rule out.
fn alert_html(
    alert: &Alert,
    kind: Notification,
    subject: &str,
    headline: &str,
    ack_url: Option<&str>,
    tz: &jiff::tz::TimeZone,
) -> Option<String> {
    static ENV: std::sync::LazyLock<minijinja::Environment<'static>> =
        std::sync::LazyLock::new(|| crate::templates::environment_with("alert.html", crate::templates::ALERT_HTML));
    let ctx = minijinja::context! {
        subject => subject,
        headline => headline,
        colour => match (kind, alert.severity) {
            (Notification::Resolved, _) => "#00734d",
            (_, analyzer::Severity::Critical) => "#b3261e",
            (_, analyzer::Severity::Warning) => "#8a5300",
            _ => "#444444",
        },
        title => &alert.title,
        description => &alert.description,
        key => &alert.key,
        source_ip => alert.source_ip.map(|ip| ip.to_string()),
        user => &alert.user_name,
        first_seen => format_date_fr(alert.first_seen, tz),
        last_seen => format_date_fr(alert.last_seen, tz),
        resolved => match kind {
            Notification::Resolved => alert.resolved_at.map(|t| format_date_fr(t, tz)),
            _ => None,
        },
        count => alert.count,
        severity => severity_fr(alert.severity),
        cctp => alert.cctp_class.terms(),
        mitre => &alert.mitre,
        evidence => &alert.last_evidence,
        rule => &alert.rule,
        id => alert.id,
        ack_url => ack_url,
    };
    match crate::templates::render(&ENV, "alert.html", ctx) {
        Ok(html) => Some(html),
        Err(e) => {
            tracing::error!(error = %e, "the alert email goes out as text only");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_domain_handles_display_names() {
        assert_eq!(sender_domain("vigie@ville.fr"), "ville.fr");
        assert_eq!(sender_domain("Vigie ENT <alertes@ent.ville.fr>"), "ent.ville.fr");
        assert_eq!(sender_domain("nobody"), "vigie.invalid");
    }

    #[test]
    fn the_html_part_escapes_what_attackers_wrote() {
        let mut policy = crate::store::tests::policy();
        policy.ack = None;
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let alert = Alert {
            id: 7,
            rule: "web.xss".into(),
            key: "source.ip=203.0.113.9".into(),
            title: "Injection de script".into(),
            description: String::new(),
            severity: analyzer::Severity::Warning,
            cctp_class: analyzer::CctpClass::SecuriteMineure,
            mitre: None,
            state: crate::AlertState::Resolved,
            first_seen: t("2025-04-07T12:00:00Z"),
            last_seen: t("2025-04-07T12:30:00Z"),
            resolved_at: Some(t("2025-04-07T12:40:00Z")),
            count: 3,
            last_evidence: "GET /?q=<script>alert(1)</script>".into(),
            source_ip: Some("203.0.113.9".parse().unwrap()),
            user_name: None,
            acknowledged: None,
        };
        let email = compose(&alert, Notification::Resolved, &policy, t("2025-04-07T12:40:00Z"));
        let html = email.html.expect("an HTML part");
        assert!(html.contains("&lt;script&gt;alert(1)") && !html.contains("<script>"), "{html}");
        assert!(
            html.contains("L'alerte n° 7 est résolue") || html.contains("L&#x27;alerte n° 7 est résolue"),
            "{html}"
        );
        assert!(html.contains("lundi 7 avril 2025, 14 h 40"), "resolved, Paris time: {html}");
        assert!(!html.contains("Prendre en compte"), "no link on a resolved alert: {html}");
    }

    #[test]
    fn routes_add_recipients_by_severity_and_rule() {
        let mut policy = crate::store::tests::policy();
        policy.routes = vec![
            crate::Route {
                min_severity: analyzer::Severity::Critical,
                rule_prefixes: vec!["web.".into(), "auth.".into()],
                to: vec!["rssi@ville.test".into()],
            },
            crate::Route {
                min_severity: analyzer::Severity::Warning,
                rule_prefixes: vec![],
                to: vec!["exploitation@ville.test".into(), "astreinte@ent.ville.test".into()],
            },
        ];
        policy.validate().unwrap();
        let t: Timestamp = "2025-04-07T12:00:00Z".parse().unwrap();
        let alert = |rule: &str, severity| Alert {
            id: 1,
            rule: rule.into(),
            key: "k".into(),
            title: "t".into(),
            description: String::new(),
            severity,
            cctp_class: analyzer::CctpClass::SecuriteMineure,
            mitre: None,
            state: crate::AlertState::Firing,
            first_seen: t,
            last_seen: t,
            resolved_at: None,
            count: 1,
            last_evidence: String::new(),
            source_ip: None,
            user_name: None,
            acknowledged: None,
        };
        let to = |rule, severity| compose(&alert(rule, severity), Notification::Firing, &policy, t).to;
        use analyzer::Severity::{Critical, Info, Warning};
        assert_eq!(
            to("web.sqli", Critical),
            ["astreinte@ent.ville.test", "rssi@ville.test", "exploitation@ville.test"],
            "each address once"
        );
        assert_eq!(to("web.sqli", Warning), ["astreinte@ent.ville.test", "exploitation@ville.test"]);
        assert_eq!(to("ent.unavailable", Critical), ["astreinte@ent.ville.test", "exploitation@ville.test"]);
        assert_eq!(to("web.scanner", Info), ["astreinte@ent.ville.test"], "on-call gets every alert");
        policy.routes[0].to.clear();
        assert!(policy.validate().unwrap_err().to_string().contains("route 1 sends to nobody"));
    }

    #[test]
    fn durations_in_french() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(duration_fr(t("2025-04-07T12:00:00Z"), t("2025-04-07T12:03:20Z")), "3 min");
        assert_eq!(duration_fr(t("2025-04-07T12:00:00Z"), t("2025-04-07T13:12:00Z")), "1 h 12 min");
        assert_eq!(duration_fr(t("2025-04-07T12:00:00Z"), t("2025-04-09T16:00:00Z")), "2 j 4 h");
    }
}
