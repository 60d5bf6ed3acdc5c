//! Notice flow tests with an injected clock: prepare, hold, escalate, approve, update, close.

use super::*;
use crate::outbox::{Outbox, OutboxEntry, OutboxState};

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn directors(n: usize) -> Vec<Director> {
    (0..n)
        .map(|i| Director {
            uai: format!("0750{i:03}A"),
            school: format!("École élémentaire n° {i} « Les Acacias »"),
            email: format!("ce.0750{i:03}a@ac-exemple.fr"),
        })
        .collect()
}

pub(crate) fn notice_policy(n_directors: usize) -> NoticePolicy {
    NoticePolicy {
        from: "Vigie <vigie@ent.ville.test>".into(),
        it_service: vec!["sctn@ville.test".into()],
        approvers: vec!["dsi.chef@ville.test".into()],
        second_approvers: vec!["dgs@ville.test".into()],
        escalate_after: Duration::from_secs(15 * 60),
        link_valid_for: Duration::from_secs(24 * 3600),
        default_estimate: Duration::from_secs(2 * 3600),
        directors: directors(n_directors),
        per_minute: 60,
        base_url: "https://vigie.ville.test".into(),
        time_zone: TimeZone::get("Europe/Paris").unwrap(),
        maintenance_silences: vec!["ent.unavailable".into()],
        outage_rules: vec!["ent.unavailable".into()],
        demo_approve_after: None,
        backups: Vec::new(),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    notices: Notices,
    outbox: Outbox,
}

fn fixture(n_directors: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("alerting.sqlite");
    let notices = Notices::open(&db, notice_policy(n_directors), SigningKey::from_bytes([3; 32])).unwrap();
    let outbox = Outbox::open(&db).unwrap();
    Fixture { _dir: dir, notices, outbox }
}

/// Every queued email, oldest first.
fn queued(outbox: &Outbox) -> Vec<OutboxEntry> {
    let mut v = outbox.entries(OutboxState::Queued, 10_000).unwrap();
    v.reverse();
    v
}

fn to_directors(entries: &[OutboxEntry]) -> Vec<&OutboxEntry> {
    entries.iter().filter(|e| e.email.school.is_some()).collect()
}

fn token_of(body: &str) -> String {
    let start = body.find("token=").expect("approval link") + "token=".len();
    body[start..].split_whitespace().next().unwrap().to_owned()
}

#[test]
fn an_outage_tells_it_at_once_and_holds_the_directors_notice_until_approved() {
    let mut f = fixture(3);
    let start = t("2025-04-07T12:30:00Z");
    let id = f.notices.on_outage("ENT", &OutageChange::Opened { start }, t("2025-04-07T12:31:00Z")).unwrap().unwrap();
    // A replay of the same change does nothing.
    assert_eq!(
        f.notices.on_outage("ENT", &OutageChange::Opened { start }, t("2025-04-07T12:31:30Z")).unwrap(),
        Some(id)
    );

    let emails = queued(&f.outbox);
    assert_eq!(
        emails.len(),
        2,
        "IT service + one approver: {:#?}",
        emails.iter().map(|e| &e.email.subject).collect::<Vec<_>>()
    );
    assert!(to_directors(&emails).is_empty(), "nothing to the directors before approval");
    let it = &emails[0].email;
    assert_eq!(it.to, vec!["sctn@ville.test".to_owned()]);
    assert_eq!(it.subject, "[Vigie] INTERRUPTION — ENT indisponible depuis lundi 7 avril 2025, 14 h 30");
    assert!(it.body.contains("attend la validation de : dsi.chef@ville.test"), "{}", it.body);
    let approval = &emails[1].email;
    assert_eq!(approval.to, vec!["dsi.chef@ville.test".to_owned()]);
    assert_eq!(approval.subject, "[Vigie] À VALIDER — avis d'interruption aux 3 directeurs (ENT)");
    for part in [
        "Durée estimée : 2 h 00 min",
        "Rétablissement prévu : lundi 7 avril 2025, 16 h 30",
        "https://vigie.ville.test/notices/approve?token=",
        "valable jusqu'au mardi 8 avril 2025, 14 h 31",
        "École élémentaire n° 0 « Les Acacias »",
    ] {
        assert!(approval.body.contains(part), "{part:?} missing in\n{}", approval.body);
    }
    let html = approval.html.as_deref().unwrap();
    assert!(html.contains("&laquo;") || html.contains("« Les Acacias »"), "{html}");
    let notice = f.notices.get(id).unwrap();
    assert_eq!(notice.state, NoticeState::AwaitingApproval);

    // Approval through the emailed link: the approver is recorded, one email per director.
    let token = token_of(&approval.body);
    let (nid, n) = f.notices.approve_with_token(&token, t("2025-04-07T12:40:00Z")).unwrap();
    assert_eq!((nid, n), (id, 3));
    let notice = f.notices.get(id).unwrap();
    assert_eq!(notice.state, NoticeState::Approved);
    assert_eq!(notice.approved_by.as_deref(), Some("dsi.chef@ville.test"));
    assert_eq!(notice.approved_at, Some(t("2025-04-07T12:40:00Z")));
    assert_eq!(f.notices.approve_with_token(&token, t("2025-04-07T12:41:00Z")).unwrap(), (id, 0), "approved once");

    let emails = queued(&f.outbox);
    let to_schools = to_directors(&emails);
    assert_eq!(to_schools.len(), 3);
    let first = &to_schools[0].email;
    assert_eq!(first.to, vec!["ce.0750000a@ac-exemple.fr".to_owned()]);
    assert_eq!(first.subject, "ENT indisponible — École élémentaire n° 0 « Les Acacias »");
    for part in [
        "L'ENT est actuellement indisponible, depuis le lundi 7 avril 2025, 14 h 30.",
        "Durée estimée de l'interruption : 2 h 00 min",
        "Heure prévue de rétablissement : lundi 7 avril 2025, 16 h 30",
        "l'école École élémentaire n° 0 « Les Acacias »",
    ] {
        assert!(first.body.contains(part), "{part:?} missing in\n{}", first.body);
    }
    let html = first.html.as_deref().unwrap();
    assert!(
        html.contains("<strong>L'ENT est actuellement indisponible</strong>") || html.contains("<strong>L&#x27;ENT"),
        "{html}"
    );
    // Rate limit: 60 per minute, one a second.
    let times: Vec<Timestamp> = to_schools.iter().map(|e| e.next_attempt_at).collect();
    assert_eq!(times, vec![t("2025-04-07T12:40:00Z"), t("2025-04-07T12:40:01Z"), t("2025-04-07T12:40:02Z")]);
}

#[test]
fn an_estimate_change_is_approved_again_then_sent_as_an_update_and_close_says_retabli() {
    let mut f = fixture(2);
    let start = t("2025-04-07T12:30:00Z");
    let id = f.notices.on_outage("ENT", &OutageChange::Opened { start }, start).unwrap().unwrap();
    assert_eq!(f.notices.approve(id, "m.martin", t("2025-04-07T12:35:00Z")).unwrap(), 2);
    let old_token = token_of(&queued(&f.outbox)[1].email.body);

    let edited = f
        .notices
        .edit(
            id,
            Some(t("2025-04-07T17:00:00Z")),
            Some("Panne du serveur de base de données."),
            "m.martin",
            t("2025-04-07T13:00:00Z"),
        )
        .unwrap();
    assert_eq!(edited.revision, 2);
    assert_eq!(edited.state, NoticeState::AwaitingApproval);
    assert_eq!(to_directors(&queued(&f.outbox)).len(), 2, "the update waits for approval");
    // The old link was for version 1: refused.
    let err = f.notices.approve_with_token(&old_token, t("2025-04-07T13:05:00Z")).unwrap_err().to_string();
    assert!(err.contains("edited"), "{err}");
    assert_eq!(f.notices.approve(id, "m.martin", t("2025-04-07T13:10:00Z")).unwrap(), 2);
    let emails = queued(&f.outbox);
    let schools = to_directors(&emails);
    assert_eq!(schools.len(), 4);
    let update = &schools[2].email;
    assert!(update.subject.starts_with("ENT indisponible (mise à jour)"), "{}", update.subject);
    assert!(update.body.contains("Heure prévue de rétablissement : lundi 7 avril 2025, 19 h 00"), "{}", update.body);
    assert!(update.body.contains("Durée estimée de l'interruption : 4 h 30 min"), "{}", update.body);
    assert!(update.body.contains("Panne du serveur de base de données."));
    assert!(update.in_reply_to.is_some());

    let closed = OutageChange::Closed { start, end: t("2025-04-07T15:45:00Z") };
    f.notices.on_outage("ENT", &closed, t("2025-04-07T15:45:10Z")).unwrap();
    f.notices.on_outage("ENT", &closed, t("2025-04-07T15:46:00Z")).unwrap();
    let emails = queued(&f.outbox);
    let schools = to_directors(&emails);
    assert_eq!(schools.len(), 6, "one 'rétabli' per school, once");
    let done = &schools[5].email;
    assert_eq!(done.subject, "ENT : service rétabli — École élémentaire n° 1 « Les Acacias »");
    assert!(done.body.contains("de nouveau disponible depuis le lundi 7 avril 2025, 17 h 45"), "{}", done.body);
    assert!(done.body.contains("a duré 3 h 15 min"), "{}", done.body);
    let it = emails.iter().find(|e| e.email.subject.starts_with("[Vigie] RÉTABLI")).unwrap();
    assert!(it.email.body.contains("part vers les 2 directeurs"), "{}", it.email.body);
}

#[test]
fn unanswered_requests_escalate_and_an_unapproved_outage_never_reaches_directors() {
    let mut f = fixture(2);
    let start = t("2025-04-07T12:30:00Z");
    let id = f.notices.on_outage("ENT", &OutageChange::Opened { start }, start).unwrap().unwrap();
    assert!(f.notices.tick(t("2025-04-07T12:44:59Z")).unwrap().is_empty());
    assert_eq!(f.notices.tick(t("2025-04-07T12:45:00Z")).unwrap(), vec![id]);
    assert!(f.notices.tick(t("2025-04-07T13:00:00Z")).unwrap().is_empty(), "once");
    let emails = queued(&f.outbox);
    let relay = emails.iter().find(|e| e.email.to == vec!["dgs@ville.test".to_owned()]).unwrap();
    assert!(relay.email.subject.starts_with("[Vigie] RELANCE — À VALIDER"), "{}", relay.email.subject);
    assert!(relay.email.body.contains("n'a pas répondu depuis 15 min"), "{}", relay.email.body);

    // The outage ends before anyone approves: cancelled, no director email, ever.
    f.notices
        .on_outage("ENT", &OutageChange::Closed { start, end: t("2025-04-07T13:10:00Z") }, t("2025-04-07T13:10:00Z"))
        .unwrap();
    assert_eq!(f.notices.get(id).unwrap().state, NoticeState::Cancelled);
    assert!(f.notices.approve(id, "dgs@ville.test", t("2025-04-07T13:11:00Z")).is_err());
    let emails = queued(&f.outbox);
    assert!(to_directors(&emails).is_empty());
    let it = emails.iter().find(|e| e.email.subject.starts_with("[Vigie] RÉTABLI")).unwrap();
    assert!(it.email.body.contains("n'avaient pas été prévenus"), "{}", it.email.body);
}

#[test]
fn forged_and_expired_links_do_not_approve() {
    let mut f = fixture(1);
    let start = t("2025-04-07T12:30:00Z");
    let id = f.notices.on_outage("ENT", &OutageChange::Opened { start }, start).unwrap().unwrap();
    let token = token_of(&queued(&f.outbox)[1].email.body);
    assert!(f.notices.approve_with_token(&token, t("2025-04-08T12:30:00Z")).is_err(), "expired after 24 h");
    let other = SigningKey::from_bytes([9; 32]).sign(&Claims {
        action: "approve".into(),
        subject: id,
        revision: 1,
        who: "intrus@example.org".into(),
        expires: t("2025-04-09T00:00:00Z"),
    });
    assert!(f.notices.approve_with_token(&other, t("2025-04-07T12:40:00Z")).is_err());
    assert_eq!(f.notices.get(id).unwrap().state, NoticeState::AwaitingApproval);
    assert!(to_directors(&queued(&f.outbox)).is_empty());
}

#[test]
fn maintenance_goes_through_approval_silences_and_warns_about_the_service_window() {
    let mut f = fixture(2);
    let now = t("2025-04-07T08:00:00Z");
    // Tuesday 8 April 2025, 02:00 → 07:00 Paris: 02:00-03:00 and 06:00-07:00 are in the windows.
    let plan = f
        .notices
        .schedule_maintenance(
            "ENT",
            t("2025-04-08T02:00:00+02:00"),
            t("2025-04-08T07:00:00+02:00"),
            "Mise à jour de sécurité de la base de données.",
            "m.martin",
            now,
        )
        .unwrap();
    assert_eq!(plan.warnings.len(), 2, "{:?}", plan.warnings);
    assert!(
        plan.warnings[0].contains("du mardi 8 avril 2025, 2 h 00 au mardi 8 avril 2025, 3 h 00 (1 h 00 min)"),
        "{:?}",
        plan.warnings
    );
    assert!(
        plan.warnings[1].contains("du mardi 8 avril 2025, 6 h 00 au mardi 8 avril 2025, 7 h 00"),
        "{:?}",
        plan.warnings
    );
    assert_eq!(plan.silences.len(), 1);
    // Inside the night only: no warning.
    assert!(
        window_overlap_warnings(
            t("2025-04-08T03:00:00+02:00"),
            t("2025-04-08T06:00:00+02:00"),
            &notice_policy(0).time_zone
        )
        .is_empty()
    );

    assert!(to_directors(&queued(&f.outbox)).is_empty());
    assert_eq!(f.notices.approve(plan.notice_id, "m.martin", now).unwrap(), 2);
    let emails = queued(&f.outbox);
    let preventive = &to_directors(&emails)[0].email;
    assert_eq!(
        preventive.subject,
        "ENT : maintenance programmée le mardi 8 avril 2025, 2 h 00 — École élémentaire n° 0 « Les Acacias »"
    );
    assert!(preventive.body.contains("fin prévue : mardi 8 avril 2025, 7 h 00"), "{}", preventive.body);
    assert!(preventive.body.contains("Mise à jour de sécurité de la base de données."));

    // An outage inside the window is explained by it: the IT service hears of it, directors
    // get no second notice.
    let start = t("2025-04-08T02:10:00+02:00");
    let id = f.notices.on_outage("ENT", &OutageChange::Opened { start }, start).unwrap().unwrap();
    assert_eq!(f.notices.get(id).unwrap().state, NoticeState::Cancelled);
    let emails = queued(&f.outbox);
    let it = emails.iter().rev().find(|e| e.email.to == vec!["sctn@ville.test".to_owned()]).unwrap();
    assert!(it.email.body.contains("maintenance programmée"), "{}", it.email.body);
    assert!(!emails.iter().any(|e| e.email.subject.contains("À VALIDER — avis d'interruption")));
}

#[test]
fn bounces_are_recorded_per_school() {
    let mut f = fixture(2);
    let start = t("2025-04-07T12:30:00Z");
    let id = f.notices.on_outage("ENT", &OutageChange::Opened { start }, start).unwrap().unwrap();
    f.notices.approve(id, "m.martin", start).unwrap();
    let schools: Vec<OutboxEntry> = queued(&f.outbox).into_iter().filter(|e| e.email.school.is_some()).collect();
    let mut outbox = f.outbox;
    outbox.mark_failed(schools[0].id, "permanent: 550 5.1.1 utilisateur inconnu", start).unwrap();
    outbox.mark_sent(schools[1].id, start).unwrap();
    let d = f.notices.deliveries(id).unwrap();
    assert_eq!(d.sent, 1);
    assert_eq!(d.queued, 0);
    assert_eq!(
        d.bounced,
        vec![(
            "0750000A".to_owned(),
            "ce.0750000a@ac-exemple.fr".to_owned(),
            "permanent: 550 5.1.1 utilisateur inconnu".to_owned()
        )]
    );
}

#[test]
fn policy_problems_are_all_reported() {
    let mut p = notice_policy(1);
    p.it_service = vec![];
    p.approvers = vec!["pas une adresse".into()];
    p.per_minute = 0;
    p.base_url = "vigie.ville.test".into();
    let err = p.validate().unwrap_err().to_string();
    for part in ["it_service lists no address", "\"pas une adresse\"", "notices_per_minute", "public_url"] {
        assert!(err.contains(part), "{part} missing: {err}");
    }
}

#[test]
fn the_monthly_report_goes_to_the_it_service_on_the_1st_with_its_pdf() {
    let mut f = fixture(3);
    // 06:59 in Paris on the 1st: not yet.
    f.notices.tick(t("2025-04-01T04:59:00Z")).unwrap();
    assert!(queued(&f.outbox).is_empty());
    f.notices.tick(t("2025-04-01T05:30:00Z")).unwrap();
    let reports: Vec<OutboxEntry> =
        queued(&f.outbox).into_iter().filter(|e| e.email.subject.starts_with("[Vigie] Rapport")).collect();
    assert_eq!(reports.len(), 1, "{reports:#?}");
    let email = &reports[0].email;
    assert_eq!(email.to, ["sctn@ville.test"]);
    assert!(email.subject.contains("mars 2025"), "{}", email.subject);
    assert!(email.html.as_deref().is_some_and(|h| h.contains("mars 2025")));
    // scripts/test.sh installs Debian's Chromium, which prints the PDF.
    assert!(std::path::Path::new(crate::CHROMIUM).exists(), "the tests need /usr/bin/chromium");
    assert_eq!(email.attachments.len(), 1, "the PDF is attached");
    assert_eq!(email.attachments[0].file_name, "rapport-2025-03.pdf");
    assert!(email.attachments[0].data.starts_with(b"%PDF"), "a PDF");
    // Once only.
    f.notices.tick(t("2025-04-01T09:00:00Z")).unwrap();
    let count = queued(&f.outbox).iter().filter(|e| e.email.subject.starts_with("[Vigie] Rapport")).count();
    assert_eq!(count, 1);
}

#[test]
fn the_preview_shows_what_approval_sends_then_what_was_sent() {
    let mut f = fixture(3);
    let start = t("2025-04-07T12:30:00Z");
    let id = f.notices.on_outage("ENT", &OutageChange::Opened { start }, t("2025-04-07T12:31:00Z")).unwrap().unwrap();
    let subject = |f: &Fixture| f.notices.preview(&f.notices.get(id).unwrap()).unwrap().0;
    let school = "École élémentaire n° 0 « Les Acacias »";
    assert_eq!(subject(&f), format!("ENT indisponible — {school}"));
    f.notices.approve(id, "dsi.chef@ville.test", t("2025-04-07T12:35:00Z")).unwrap();
    assert_eq!(subject(&f), format!("ENT indisponible — {school}"), "what was sent, not the next update");
    let later = t("2025-04-07T16:30:00Z");
    f.notices.edit(id, Some(later), Some("Panne du fournisseur."), "dsi.chef@ville.test", later).unwrap();
    assert_eq!(subject(&f), format!("ENT indisponible (mise à jour) — {school}"), "the update approval would send");
    let (_, text) = f.notices.preview(&f.notices.get(id).unwrap()).unwrap();
    assert!(text.contains("Panne du fournisseur."), "{text}");
    f.notices.approve(id, "dsi.chef@ville.test", later).unwrap();
    assert_eq!(subject(&f), format!("ENT indisponible (mise à jour) — {school}"));
    let end = t("2025-04-07T17:00:00Z");
    f.notices.on_outage("ENT", &OutageChange::Closed { start, end }, end).unwrap();
    assert_eq!(subject(&f), format!("ENT : service rétabli — {school}"));
}
