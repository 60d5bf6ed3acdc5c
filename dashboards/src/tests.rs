//! Handler tests through `router().oneshot(…)`: the whole route table against anonymous and
//! wrong-role visitors, CSRF on every form, the login rate limit, sessions, headers, pages.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use collector::{Health, PipelineMetrics};
use jiff::{SignedDuration, Timestamp};
use prometheus_client::registry::Registry;
use tower::ServiceExt;

use crate::routes::{Access, Kind, ROUTES};
use crate::services::*;
use crate::users::{Role, UserStore};
use crate::{AppInputs, AppState, ClientAddr, ServerSettings};

const PASSWORD: &str = "correct horse battery staple";
const OUTSIDE: &str = "192.0.2.10";

struct Fixture {
    state: AppState,
    clock: Arc<Mutex<Timestamp>>,
    totp: HashMap<Role, String>,
    blocklist: Arc<Mutex<analyzer::BlockList>>,
    health: Health,
    _dir: tempfile::TempDir,
}

fn user_name(role: Role) -> String {
    format!("u-{}", role.as_str())
}

fn detection(rule: &str, ip: &str, n: u64, at: Timestamp) -> analyzer::Detection {
    analyzer::Detection {
        id: format!("{rule}:web:{n}"),
        rule: rule.into(),
        title: format!("Titre de {rule}"),
        description: String::new(),
        severity: analyzer::Severity::Critical,
        cctp_class: analyzer::CctpClass::SecuriteMajeureCodePropre,
        mitre: None,
        timestamp: at,
        source_ip: Some(ip.parse().unwrap()),
        user_name: None,
        key: format!("source.ip={ip}"),
        evidence: "union select".into(),
        event_id: collector::EventId::at("web", n),
    }
}

fn fixture_with(settings: ServerSettings, services: Services) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let now: Timestamp = "2025-09-02T10:00:00Z".parse().unwrap();
    let mut registry = Registry::default();
    let metrics = PipelineMetrics::register(&mut registry);
    metrics.stage_out("parse", 12);
    let health = Health::default();
    let policy = alerting::AlertPolicy {
        resolve_after: Duration::from_secs(60),
        repeat_every: Duration::from_secs(3600),
        on_call: vec!["astreinte@ville.fr".into()],
        from: "vigie@ville.fr".into(),
        time_zone: jiff::tz::TimeZone::UTC,
        ack: None,
        inhibit: Vec::new(),
        routes: Vec::new(),
        holds: Vec::new(),
    };
    let db = dir.path().join("alerts.sqlite");
    let mut writer = alerting::AlertStore::open(&db, policy.clone()).unwrap();
    writer.ingest(&[detection("web.sqli", "203.0.113.9", 1, now)], now).unwrap();
    let alerts = alerting::AlertStore::open(&db, policy).unwrap();
    let blocklist = Arc::new(Mutex::new(analyzer::BlockList::new(analyzer::BlockPolicy::default(), Vec::new())));
    blocklist.lock().unwrap().add(&detection("web.sqli", "203.0.113.9", 1, now));
    let mut users = UserStore::open(&dir.path().join("users.sqlite")).unwrap();
    let mut totp = HashMap::new();
    for role in Role::ALL {
        if let Some(secret) = users.add(&user_name(role), role, PASSWORD, false, now).unwrap() {
            totp.insert(role, secret);
        }
    }
    let stats_path = dir.path().join("statistics.sqlite");
    let mut stats = crate::Statistics::open(&stats_path, jiff::tz::TimeZone::UTC).unwrap();
    let mut e = collector::Event {
        id: collector::EventId::at("web", 1),
        timestamp: now,
        dataset: "apache.access".into(),
        url_path: Some("/ent/login_check".into()),
        http_method: Some("GET".into()),
        http_status: Some(302),
        school_uai: Some("0750001A".into()),
        school_name: Some("École élémentaire Jean-Jaurès".into()),
        user_role: Some("eleve".into()),
        user_name: Some("lea.martin".into()),
        ..collector::Event::default()
    };
    for _ in 0..7 {
        stats.observe(&e);
    }
    e.category = collector::Category::Network;
    e.action = Some("block".into());
    e.destination_port = Some(3389);
    e.source_ip = Some("198.51.100.7".parse().unwrap());
    stats.observe(&e);
    stats.flush().unwrap();
    let clock = Arc::new(Mutex::new(now));
    let c = clock.clone();
    let state = AppState::with_clock(
        AppInputs {
            registry: Arc::new(registry),
            health: health.clone(),
            metrics,
            alerts,
            blocklist: blocklist.clone(),
            time_zone: jiff::tz::TimeZone::get("Europe/Paris").unwrap(),
            users,
            settings,
            statistics: Some(crate::StatsReader::open(&stats_path).unwrap()),
            panels: crate::load_panels(None).unwrap(),
            services,
        },
        Arc::new(move || *c.lock().unwrap()),
    );
    Fixture { state, clock, totp, blocklist, health, _dir: dir }
}

fn fixture() -> Fixture {
    fixture_with(ServerSettings::default(), Services::default())
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
    fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
    }
    fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .iter()
            .find_map(|c| c.strip_prefix(&format!("{name}=")).map(|v| v.split(';').next().unwrap().to_owned()))
    }
}

impl Fixture {
    fn advance(&self, d: SignedDuration) {
        let mut c = self.clock.lock().unwrap();
        *c = c.checked_add(d).unwrap();
    }

    async fn send(&self, method: &str, uri: &str, cookie: Option<&str>, form: Option<&str>, ip: &str) -> Answer {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(c) = cookie {
            builder = builder.header(header::COOKIE, c);
        }
        if form.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let mut request = builder.body(Body::from(form.unwrap_or("").to_owned())).unwrap();
        let addr = SocketAddr::new(ip.parse::<IpAddr>().unwrap(), 40000);
        request.extensions_mut().insert(axum::extract::ConnectInfo(ClientAddr(addr)));
        let response = crate::router(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 8 << 20).await.unwrap();
        Answer { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
    }

    async fn get(&self, uri: &str, session: Option<&Login>) -> Answer {
        self.send("GET", uri, session.map(|s| s.cookie.as_str()), None, OUTSIDE).await
    }

    /// Fills and posts the login form like a browser: GET for the token, then POST.
    async fn try_login(&self, user: &str, password: &str, code: &str, ip: &str) -> Answer {
        let page = self.send("GET", "/connexion", None, None, ip).await;
        let token = page.cookie(crate::LOGIN_CSRF_COOKIE).unwrap();
        assert!(page.body.contains(&format!("value=\"{token}\"")), "the form carries the cookie's token");
        let form = format!("csrf={token}&utilisateur={user}&mot_de_passe={}&code={code}", password.replace(' ', "+"));
        self.send("POST", "/connexion", Some(&format!("{}={token}", crate::LOGIN_CSRF_COOKIE)), Some(&form), ip).await
    }

    async fn login(&self, role: Role) -> Login {
        if role == Role::Legal {
            // A one-time code is accepted once: the next login needs the next code.
            self.advance(SignedDuration::from_secs(31));
        }
        let code = self.totp.get(&role).map(|s| crate::totp_code(s, *self.clock.lock().unwrap()).unwrap());
        let answer = self.try_login(&user_name(role), PASSWORD, code.as_deref().unwrap_or(""), OUTSIDE).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{role:?}: {}", answer.body);
        let token = answer.cookie(crate::SESSION_COOKIE).expect("a session cookie");
        let cookie = format!("{}={token}", crate::SESSION_COOKIE);
        let home = if role == Role::Legal { "/requisitions" } else { "/" };
        let page = self.send("GET", home, Some(&cookie), None, OUTSIDE).await;
        assert_eq!(page.status, StatusCode::OK, "{role:?} {home}: {}", page.body);
        let csrf = page.body.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
        Login { cookie, csrf }
    }
}

struct Login {
    cookie: String,
    csrf: String,
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "1")
}

#[tokio::test]
async fn every_route_refuses_anonymous_and_wrong_role_access() {
    let f = fixture();
    let mut sessions = HashMap::new();
    for role in Role::ALL {
        sessions.insert(role, f.login(role).await);
    }
    for spec in ROUTES {
        let path = concrete(spec.path);
        let form = (spec.method == "POST").then_some("");
        // Anonymous, from an address that is not a machine client.
        let anon = f.send(spec.method, &path, None, form, OUTSIDE).await;
        match (spec.access, spec.kind) {
            // Public: no access check (the readiness probe may say 503: no stage runs here).
            (Access::Public, _) => assert!(
                anon.status != StatusCode::INTERNAL_SERVER_ERROR && anon.status != StatusCode::UNAUTHORIZED,
                "{} {path}: {}",
                spec.method,
                anon.status
            ),
            (_, Kind::Page) => {
                assert_eq!(anon.status, StatusCode::SEE_OTHER, "{} {path}", spec.method);
                assert!(anon.location().starts_with("/connexion?suite="), "{path}: {}", anon.location());
            }
            _ => assert_eq!(anon.status, StatusCode::UNAUTHORIZED, "{} {path}: {}", spec.method, anon.body),
        }
        // Every role the route does not list is refused, before any CSRF check or handler.
        for role in Role::ALL.into_iter().filter(|r| !spec.access.roles().contains(r)) {
            if spec.access == Access::Public {
                continue;
            }
            let s = &sessions[&role];
            let body = form.map(|_| format!("csrf={}", s.csrf));
            let answer = f.send(spec.method, &path, Some(&s.cookie), body.as_deref(), OUTSIDE).await;
            let expected = if spec.hidden { StatusCode::NOT_FOUND } else { StatusCode::FORBIDDEN };
            assert_eq!(answer.status, expected, "{role:?} on {} {path}: {}", spec.method, answer.body);
        }
        // Every role it lists gets through the guard (GET: a page or data).
        if spec.method == "GET" {
            for role in spec.access.roles() {
                let answer = f.get(&path, Some(&sessions[role])).await;
                let ok = answer.status == StatusCode::OK
                    || (path.starts_with("/requisitions/export") && answer.status == StatusCode::SERVICE_UNAVAILABLE);
                assert!(ok, "{role:?} on {path}: {} {}", answer.status, answer.body);
            }
        }
    }
    // The requisition and audit pages do not even appear in other roles' navigation.
    for role in [Role::Viewer, Role::OnCall, Role::Approver] {
        let page = f.get("/", Some(&sessions[&role])).await.body;
        assert!(
            page.contains("Sécurité") && !page.contains("Réquisitions") && !page.contains("Journal d’audit"),
            "{role:?}"
        );
    }
    let admin = f.get("/", Some(&sessions[&Role::Admin])).await.body;
    assert!(!admin.contains("href=\"/requisitions\"") && admin.contains("href=\"/audit\""));
    let legal = f.get("/requisitions", Some(&sessions[&Role::Legal])).await.body;
    assert!(legal.contains("href=\"/requisitions\"") && !legal.contains("href=\"/securite\""), "{legal}");
}

#[tokio::test]
async fn every_form_needs_the_sessions_csrf_token() {
    let f = fixture();
    let forms: Vec<_> = ROUTES.iter().filter(|r| r.method == "POST" && r.access != Access::Public).collect();
    assert!(forms.len() >= 5);
    for spec in forms {
        // Two logins per form: a minute apart, the login rate limit stays out of the way.
        f.advance(SignedDuration::from_mins(1));
        let role = spec.access.roles()[0];
        let s = f.login(role).await;
        let path = concrete(spec.path);
        for body in ["", "csrf=", "csrf=0000", "regle=x&duree_heures=1&motif=m"] {
            let answer = f.send("POST", &path, Some(&s.cookie), Some(body), OUTSIDE).await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path} with {body:?}: {}", answer.body);
            assert!(answer.body.contains("CSRF"), "{}", answer.body);
        }
        // Another session's token is no good either.
        let other = f.login(role).await;
        let answer = f.send("POST", &path, Some(&s.cookie), Some(&format!("csrf={}", other.csrf)), OUTSIDE).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}");
        // With its own token, the request reaches the handler.
        let answer = f.send("POST", &path, Some(&s.cookie), Some(&format!("csrf={}", s.csrf)), OUTSIDE).await;
        assert_ne!(answer.status, StatusCode::FORBIDDEN, "{path}: {}", answer.body);
    }
    // The login form: the posted token must equal the cookie's.
    let answer = f
        .send(
            "POST",
            "/connexion",
            Some("vigie_login_csrf=aaaa"),
            Some(&format!("csrf=bbbb&utilisateur=u-viewer&mot_de_passe={PASSWORD}")),
            OUTSIDE,
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.cookie(crate::SESSION_COOKIE).is_none());
}

#[tokio::test]
async fn login_is_rate_limited_per_address_and_per_account() {
    let f = fixture();
    for _ in 0..10 {
        let a = f.try_login("u-viewer", "wrong password!!", "", OUTSIDE).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert!(a.body.contains("Identifiant ou mot de passe incorrect"));
    }
    // The right password is refused too while the limit holds, from this address…
    let a = f.try_login("u-viewer", PASSWORD, "", OUTSIDE).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.headers[header::RETRY_AFTER], "60");
    assert!(a.cookie(crate::SESSION_COOKIE).is_none());
    // …and for this account from another address.
    assert_eq!(f.try_login("u-viewer", PASSWORD, "", "192.0.2.11").await.status, StatusCode::TOO_MANY_REQUESTS);
    // Another account from another address is not affected.
    assert_eq!(f.try_login("u-on-call", PASSWORD, "", "192.0.2.12").await.status, StatusCode::SEE_OTHER);
    f.advance(SignedDuration::from_secs(61));
    assert_eq!(f.try_login("u-viewer", PASSWORD, "", OUTSIDE).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_legal_role_logs_in_with_a_one_time_code() {
    let f = fixture();
    let a = f.try_login("u-legal", PASSWORD, "", OUTSIDE).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body.contains("Code à usage unique"));
    let s = f.login(Role::Legal).await;
    let page = f.get("/requisitions", Some(&s)).await;
    assert!(page.body.contains("Autorité requérante") && page.body.contains("Numéro de procédure (PV)"));
    assert!(page.body.contains("non configuré"), "no requisition service is wired: {}", page.body);
    // A legal session does not see the dashboards.
    assert_eq!(f.get("/", Some(&s)).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn sessions_end_when_idle_and_at_logout_and_cookies_are_strict() {
    let f = fixture_with(ServerSettings { cookie_secure: true, ..ServerSettings::default() }, Services::default());
    let a = f.try_login("u-viewer", PASSWORD, "", OUTSIDE).await;
    let cookie = a.set_cookies().into_iter().find(|c| c.starts_with("vigie_session=")).unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let s = f.login(Role::Viewer).await;
    f.advance(SignedDuration::from_mins(59));
    assert_eq!(f.get("/", Some(&s)).await.status, StatusCode::OK);
    f.advance(SignedDuration::from_mins(61));
    let a = f.get("/", Some(&s)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "idle for 61 min");
    let s = f.login(Role::Viewer).await;
    let a = f.send("POST", "/deconnexion", Some(&s.cookie), Some(&format!("csrf={}", s.csrf)), OUTSIDE).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(f.get("/", Some(&s)).await.status, StatusCode::SEE_OTHER, "logged out");
}

#[tokio::test]
async fn security_headers_on_every_answer() {
    let f = fixture();
    let s = f.login(Role::Viewer).await;
    for (uri, session) in [("/connexion", None), ("/", Some(&s)), ("/api/v1/overview", Some(&s)), ("/nulle-part", None)]
    {
        let a = f.get(uri, session).await;
        let h = &a.headers;
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'")
                && !csp.contains("unsafe-inline")
                && csp.contains("frame-ancestors 'none'")
        );
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert!(!h.contains_key(header::STRICT_TRANSPORT_SECURITY), "no HSTS over plain HTTP");
        assert!(!a.body.contains("<script>") && !a.body.contains(" style=\""), "{uri}: no inline script or style");
    }
}

#[tokio::test]
async fn machine_endpoints_answer_machine_clients_and_sessions_only() {
    let f = fixture();
    assert_eq!(f.send("GET", "/metrics", None, None, "127.0.0.1").await.status, StatusCode::OK);
    let list = f.send("GET", "/api/v1/blocklist", None, None, "::1").await;
    assert!(list.body.lines().any(|l| l.starts_with("203.0.113.9")), "{}", list.body);
    assert_eq!(f.send("GET", "/metrics", None, None, OUTSIDE).await.status, StatusCode::UNAUTHORIZED);
    let s = f.login(Role::Viewer).await;
    let m = f.get("/metrics", Some(&s)).await;
    assert!(m.body.contains("vigie_stage_events_out_total{stage=\"parse\"} 12"), "{}", m.body);
    // A legal session is refused even from a machine client's address.
    let legal = f.login(Role::Legal).await;
    assert_eq!(f.send("GET", "/metrics", Some(&legal.cookie), None, "127.0.0.1").await.status, StatusCode::FORBIDDEN);
    // Behind a proxy, the forwarded address counts, not the proxy's.
    let f = fixture_with(ServerSettings { behind_proxy: true, ..ServerSettings::default() }, Services::default());
    let mut request =
        Request::get("/metrics").header("x-forwarded-for", "127.0.0.1, 192.0.2.99").body(Body::empty()).unwrap();
    request.extensions_mut().insert(axum::extract::ConnectInfo(ClientAddr("127.0.0.1:1".parse().unwrap())));
    let response = crate::router(f.state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn probes_stay_public() {
    let f = fixture();
    f.health.expect("archive");
    let a = f.send("GET", "/readyz", None, None, OUTSIDE).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(a.body.contains("archive"));
    f.health.set("archive", true);
    assert_eq!(f.send("GET", "/readyz", None, None, OUTSIDE).await.status, StatusCode::OK);
    assert_eq!(f.send("GET", "/healthz", None, None, OUTSIDE).await.body, "ok\n");
}

#[tokio::test]
async fn pages_show_what_the_stores_hold_in_french() {
    let f = fixture();
    let s = f.login(Role::OnCall).await;
    let overview = f.get("/", Some(&s)).await.body;
    assert!(overview.contains("Vue d’ensemble") && overview.contains("Titre de web.sqli"), "{overview}");
    assert!(overview.contains("mardi 2 septembre 2025, 12 h 00"), "Paris time: {overview}");
    assert!(overview.contains("non configuré"), "availability is not wired: {overview}");
    let security = f.get("/securite?periode=7j", Some(&s)).await.body;
    assert!(security.contains("203.0.113.9") && security.contains("<svg"), "{security}");
    assert!(security.contains("port 3389") && security.contains("198.51.100.7"), "{security}");
    assert!(security.contains("value=\"7j\" selected"), "{security}");
    let traffic = f.get("/trafic?periode=semaine&date=2025-09-02", Some(&s)).await.body;
    assert!(traffic.contains("École élémentaire Jean-Jaurès"), "{traffic}");
    let csv = f.get("/trafic.csv?periode=mois&date=2025-09-02", Some(&s)).await;
    assert_eq!(csv.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(
        csv.body.contains("0750001A;École élémentaire Jean-Jaurès;7;7;0;7;mois;2025-09-01;2025-09-30"),
        "{}",
        csv.body
    );
    let saturation = f.get("/saturation", Some(&s)).await.body;
    assert!(saturation.contains("Débit mesuré vers l’ENT"), "{saturation}");
    assert!(saturation.contains("non configuré"), "no series store is wired: {saturation}");
    let health = f.get("/sante", Some(&s)).await.body;
    assert!(health.contains("Santé de Vigie") && health.contains("Files d’attente"), "{health}");
    // Silence an alert, see it, lift it.
    let form = format!("csrf={}&regle=web.sqli&cle=&duree_heures=4&motif=faux+positif", s.csrf);
    let a = f.send("POST", "/alertes/silences", Some(&s.cookie), Some(&form), OUTSIDE).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let page = f.get("/incidents", Some(&s)).await.body;
    assert!(page.contains("faux positif") && page.contains("Lever"), "{page}");
    let api: serde_json::Value = serde_json::from_str(&f.get("/api/v1/incidents", Some(&s)).await.body).unwrap();
    let id = api["silences"][0]["id"].as_i64().unwrap();
    let lift = f
        .send(
            "POST",
            &format!("/alertes/silences/{id}/lever"),
            Some(&s.cookie),
            Some(&format!("csrf={}", s.csrf)),
            OUTSIDE,
        )
        .await;
    assert_eq!(lift.status, StatusCode::SEE_OTHER);
    let api: serde_json::Value = serde_json::from_str(&f.get("/api/v1/incidents", Some(&s)).await.body).unwrap();
    assert_eq!(api["silences"].as_array().unwrap().len(), 0);
    // On-call takes a firing alert: its reminders stop and the page says who.
    let firing = api["alerts"].as_array().unwrap().iter().find(|a| a["state"] == "firing").expect("a firing alert");
    let id = firing["id"].as_i64().unwrap();
    assert!(page.contains(&format!("/alertes/{id}/prise-en-compte")), "{page}");
    let path = format!("/alertes/{id}/prise-en-compte");
    let take = f.send("POST", &path, Some(&s.cookie), Some(&format!("csrf={}", s.csrf)), OUTSIDE).await;
    assert_eq!(take.status, StatusCode::SEE_OTHER, "{}", take.body);
    let api: serde_json::Value = serde_json::from_str(&f.get("/api/v1/incidents", Some(&s)).await.body).unwrap();
    let taken = api["alerts"].as_array().unwrap().iter().find(|a| a["id"] == id).unwrap().clone();
    assert_eq!(taken["acknowledged_by"], "u-on-call", "{taken}");
    let page = f.get("/incidents", Some(&s)).await.body;
    assert!(!page.contains(&path), "no button once taken: {page}");
    // A viewer sees no button.
    let viewer = f.login(Role::Viewer).await;
    assert!(!f.get("/incidents", Some(&viewer)).await.body.contains("Je m’en occupe"));
    // The block list follows the analyzer's.
    f.blocklist.lock().unwrap().add(&detection("web.traversal", "198.51.100.66", 2, *f.clock.lock().unwrap()));
    assert!(f.get("/securite", Some(&s)).await.body.contains("198.51.100.66"));
}

#[tokio::test]
async fn the_openapi_document_lists_every_api_route() {
    let f = fixture();
    let s = f.login(Role::Viewer).await;
    let doc: serde_json::Value = serde_json::from_str(&f.get("/api/openapi.json", Some(&s)).await.body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for r in ROUTES.iter().filter(|r| matches!(r.kind, Kind::Api | Kind::Form)) {
        let op = &doc["paths"][r.path][r.method.to_ascii_lowercase()];
        assert!(op.is_object(), "{} {} missing", r.method, r.path);
    }
    for api in ["/api/v1/overview", "/api/v1/security", "/api/v1/traffic", "/api/v1/health"] {
        let a = f.get(api, Some(&s)).await;
        assert_eq!(a.status, StatusCode::OK, "{api}");
        serde_json::from_str::<serde_json::Value>(&a.body).unwrap_or_else(|e| panic!("{api}: {e}"));
    }
    let traffic: serde_json::Value =
        serde_json::from_str(&f.get("/api/v1/traffic?periode=jour&date=2025-09-02", Some(&s)).await.body).unwrap();
    assert_eq!(traffic["statistics"]["schools"][0]["pupil_logins"], 7);
}

/// An approval the pages sent: notice, expected end, added message, approver.
type Approval = (i64, Option<Timestamp>, String, String);

/// The service seams, as the binary will implement them over the other crates; here a
/// recording implementation checks what the pages send and show.
#[derive(Debug, Default)]
struct Recorder {
    approved: Mutex<Vec<Approval>>,
    searches: Mutex<Vec<(RequisitionQuery, String)>>,
    series: Mutex<Vec<(String, Combine)>>,
}

impl IncidentService for Recorder {
    fn incidents(&self, now: Timestamp) -> ServiceResult<Vec<IncidentView>> {
        Ok(vec![IncidentView {
            id: 1,
            title: "ENT inaccessible".into(),
            cctp_class: "bloquant".into(),
            opened: now,
            deadline: now.checked_add(SignedDuration::from_hours(30)).ok(),
            resolved: None,
        }])
    }
    fn notices(&self, now: Timestamp) -> ServiceResult<Vec<NoticeView>> {
        Ok(vec![NoticeView {
            id: 7,
            service: "ENT".into(),
            kind: "interruption".into(),
            subject: "ENT indisponible — École Jean Moulin".into(),
            body: "Reprise prévue à 14 h 30.".into(),
            message: String::new(),
            starts_at: now,
            expected_end: now.checked_add(SignedDuration::from_hours(2)).unwrap(),
            ended_at: None,
            created: now,
            approved: None,
            cancelled: false,
            recipients: 188,
        }])
    }
    fn approve_notice(
        &self,
        id: i64,
        end: Option<Timestamp>,
        message: &str,
        approver: &str,
        _: Timestamp,
    ) -> ServiceResult<usize> {
        self.approved.lock().unwrap().push((id, end, message.into(), approver.into()));
        Ok(188)
    }
    fn approve_with_token(&self, token: &str, _: Timestamp) -> ServiceResult<(i64, usize)> {
        if token == "good" { Ok((7, 188)) } else { Err(ServiceError::Refused("Ce lien a expiré.".into())) }
    }
}

impl RequisitionService for Recorder {
    fn search(&self, query: &RequisitionQuery, operator: &str, _: Timestamp) -> ServiceResult<RequisitionResult> {
        self.searches.lock().unwrap().push((query.clone(), operator.into()));
        Ok(RequisitionResult {
            search_id: "s1".into(),
            total: 1,
            records: vec![RequisitionRecord {
                timestamp: query.from,
                source_ip: match query.target {
                    SearchTarget::Ip(ip, _) => Some(ip),
                    _ => None,
                },
                source_port: Some(51234),
                user: Some("lea.martin".into()),
                school: Some("0691234A".into()),
                kind: "connexion".into(),
            }],
            truncated: false,
        })
    }
    fn export(&self, search_id: &str, _: &str, _: Timestamp) -> ServiceResult<Export> {
        Ok(Export {
            file_name: format!("requisition-{search_id}.csv"),
            content_type: "text/csv".into(),
            bytes: b"a;b\n".to_vec(),
        })
    }
    fn audit(&self, _: &str, _: usize) -> ServiceResult<Vec<AuditEntry>> {
        let searches = self.searches.lock().unwrap();
        Ok(searches
            .iter()
            .enumerate()
            .map(|(i, (q, op))| AuditEntry {
                seq: i as u64 + 1,
                at: q.from,
                operator: op.clone(),
                action: "search".into(),
                reference: format!("{} / {}", q.authority, q.procedure_number),
                query: format!("{:?}", q.target),
                results: Some(1),
                export_sha256: None,
            })
            .collect())
    }
}

impl SeriesService for Recorder {
    fn series(&self, selector: &str, combine: Combine, from: Timestamp, _: Timestamp) -> ServiceResult<Option<Series>> {
        self.series.lock().unwrap().push((selector.to_owned(), combine));
        if selector != "host_filesystem_avail_bytes" {
            return Ok(None);
        }
        // 40 GB free, losing 1 GB an hour.
        let points =
            (0..6).map(|h| (from.checked_add(SignedDuration::from_hours(h)).unwrap(), (40 - h) as f64 * 1e9)).collect();
        Ok(Some(Series { points, forecast: Vec::new() }))
    }
}

impl AvailabilityService for Recorder {
    fn up_now(&self, _: Timestamp) -> ServiceResult<Option<bool>> {
        Ok(Some(true))
    }
    fn month(&self, day: jiff::civil::Date, _: Timestamp) -> ServiceResult<MonthAvailability> {
        Ok(MonthAvailability { year: day.year(), month: day.month(), days: Vec::new(), ratio: 0.999, required: 1.0 })
    }
}

#[tokio::test]
async fn the_availability_api_takes_the_month_asked_and_refuses_a_bad_one() {
    let recorder = Arc::new(Recorder::default());
    let f = fixture_with(ServerSettings::default(), Services { availability: Some(recorder), ..Services::default() });
    let s = f.login(Role::Viewer).await;
    let api: serde_json::Value =
        serde_json::from_str(&f.get("/api/v1/availability?month=2025-04", Some(&s)).await.body).unwrap();
    assert_eq!((api["month"]["year"].as_i64(), api["month"]["month"].as_i64()), (Some(2025), Some(4)), "{api}");
    let bad = f.get("/api/v1/availability?month=avril", Some(&s)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("YYYY-MM"), "{}", bad.body);
    // Without a month: the current one (the fixture's clock is in September 2025).
    let api: serde_json::Value = serde_json::from_str(&f.get("/api/v1/availability", Some(&s)).await.body).unwrap();
    assert_eq!(api["month"]["month"].as_i64(), Some(9), "{api}");
}

#[tokio::test]
async fn panels_read_the_series_scaled_with_a_forecast() {
    let recorder = Arc::new(Recorder::default());
    let f = fixture_with(ServerSettings::default(), Services { series: Some(recorder.clone()), ..Services::default() });
    let s = f.login(Role::Viewer).await;
    let api: serde_json::Value = serde_json::from_str(&f.get("/api/v1/saturation", Some(&s)).await.body).unwrap();
    let disk =
        api["panels"].as_array().unwrap().iter().find(|p| p["panel"]["id"] == "disk").expect("the disk panel").clone();
    let asked = recorder.series.lock().unwrap().clone();
    assert!(asked.contains(&("host_filesystem_avail_bytes".into(), Combine::Min)), "{asked:?}");
    assert!(asked.contains(&(r#"apache_workers{state="busy"}"#.into(), Combine::Sum)), "{asked:?}");
    let values: Vec<f64> =
        disk["data"]["series"]["points"].as_array().unwrap().iter().map(|p| p[1].as_f64().unwrap()).collect();
    assert_eq!(values.len(), 6, "{disk}");
    assert!((values[0] - 40.0).abs() < 1e-9 && (values[5] - 35.0).abs() < 1e-9, "bytes shown in GB: {values:?}");
    let page = f.get("/saturation", Some(&s)).await.body;
    assert!(page.contains(r#"stroke-dasharray="4 4""#), "the disk-full forecast is drawn dashed: {page}");
    // 35 GB left at 1 GB an hour: full 35 hours after the last point (now − 24 h + 5 h), so
    // on 3 September at 02:00 UTC, 4 h 00 in Paris.
    assert!(page.contains("disque plein vers le mercredi 3 septembre 2025, 4 h 00"), "{page}");
}

#[tokio::test]
async fn wired_services_approve_notices_and_search_requisitions() {
    let recorder = Arc::new(Recorder::default());
    let services =
        Services { incidents: Some(recorder.clone()), requisitions: Some(recorder.clone()), ..Services::default() };
    let f = fixture_with(ServerSettings { searches_per_minute: 4, ..ServerSettings::default() }, services);
    let viewer = f.login(Role::Viewer).await;
    let page = f.get("/incidents", Some(&viewer)).await.body;
    assert!(page.contains("ENT inaccessible") && page.contains("reste 1 j 6 h"), "{page}");
    assert!(!page.contains("Valider et envoyer"), "a viewer cannot approve");
    let approver = f.login(Role::Approver).await;
    let page = f.get("/incidents", Some(&approver)).await.body;
    assert!(page.contains("Valider et envoyer"), "{page}");
    assert!(page.contains("2025-09-02T14:00"), "the expected end is prefilled in Paris time: {page}");
    let form = format!("csrf={}&fin_prevue=2025-09-02T17%3A30&message=Reprise+%C3%A0+17+h+30.", approver.csrf);
    let a = f.send("POST", "/incidents/avis/7/approuver", Some(&approver.cookie), Some(&form), OUTSIDE).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(
        recorder.approved.lock().unwrap()[0],
        (7, Some("2025-09-02T15:30:00Z".parse().unwrap()), "Reprise à 17 h 30.".into(), "u-approver".into())
    );
    // The emailed link: opening it only asks for a click (mail scanners fetch links).
    let page = f.get("/notices/approve?token=good", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("name=\"token\" value=\"good\""), "{}", page.body);
    assert_eq!(recorder.approved.lock().unwrap().len(), 1, "a GET approves nothing");
    let a = f.send("POST", "/notices/approve", None, Some("token=good"), OUTSIDE).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("188 courriels partent"), "{}", a.body);
    let a = f.send("POST", "/notices/approve", None, Some("token=forged"), OUTSIDE).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("Ce lien a expiré."), "the refusal is shown: {}", a.body);

    let legal = f.login(Role::Legal).await;
    let search = |authority: &str, ip: &str, user: &str| {
        format!(
            "csrf={}&autorite={authority}&procedure=PV+2025%2F77&fondement=art.+60-1+CPP&date_requisition=2025-09-03\
             &debut=2025-09-01T08%3A00&fin=2025-09-01T12%3A00&ip={ip}&port=&compte={user}&ecole=",
            legal.csrf
        )
    };
    let a = f
        .send("POST", "/requisitions/recherche", Some(&legal.cookie), Some(&search("", "203.0.113.9", "")), OUTSIDE)
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("L’autorité requérante, le numéro de procédure"), "{}", a.body);
    let both = search("Parquet+de+Lyon", "203.0.113.9", "lea.martin");
    let a = f.send("POST", "/requisitions/recherche", Some(&legal.cookie), Some(&both), OUTSIDE).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("une seule chose à la fois"), "{}", a.body);
    assert!(recorder.searches.lock().unwrap().is_empty(), "no search without a valid form");
    let good = search("Parquet+de+Lyon", "203.0.113.9", "");
    let a = f.send("POST", "/requisitions/recherche", Some(&legal.cookie), Some(&good), OUTSIDE).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("51234") && a.body.contains("/requisitions/export/s1"), "{}", a.body);
    let (q, operator) = recorder.searches.lock().unwrap()[0].clone();
    assert_eq!((q.authority.as_str(), q.procedure_number.as_str()), ("Parquet de Lyon", "PV 2025/77"));
    assert_eq!(q.target, SearchTarget::Ip("203.0.113.9".parse().unwrap(), None));
    assert_eq!(operator, "u-legal");
    assert_eq!(q.from, "2025-09-01T06:00:00Z".parse::<Timestamp>().unwrap(), "08:00 in Paris");
    let export = f.get("/requisitions/export/s1", Some(&legal)).await;
    assert_eq!(export.headers[header::CONTENT_DISPOSITION], "attachment; filename=\"requisition-s1.csv\"");
    let audit = f.get("/audit", Some(&legal)).await.body;
    assert!(audit.contains("Parquet de Lyon / PV 2025/77") && audit.contains("recherche"), "{audit}");
    // The fifth search in a minute is refused (the limit is 4 here; refused forms count too).
    let a = f.send("POST", "/requisitions/recherche", Some(&legal.cookie), Some(&good), OUTSIDE).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = f.send("POST", "/requisitions/recherche", Some(&legal.cookie), Some(&good), OUTSIDE).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
}

fn self_signed(dir: &std::path::Path) -> crate::TlsFiles {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let files = crate::TlsFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem") };
    std::fs::write(&files.cert, cert.cert.pem()).unwrap();
    std::fs::write(&files.key, cert.signing_key.serialize_pem()).unwrap();
    files
}

#[tokio::test]
async fn tls_serves_https_with_hsts_and_shuts_down_gracefully() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let files = self_signed(dir.path());
    let der = std::fs::read(&files.cert).unwrap();
    let f = fixture_with(
        ServerSettings { tls: Some(files), cookie_secure: true, ..ServerSettings::default() },
        Services::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(crate::serve(listener, f.state.clone(), cancel.clone()));

    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from_pem_slice(&der).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(b"GET /connexion HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await.unwrap_or_default();
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("strict-transport-security: max-age=31536000"), "{answer}");
    assert!(answer.contains("; secure"), "cookies are Secure under TLS: {answer}");
    // A plain-HTTP request on the TLS port gets no page.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain.write_all(b"GET /connexion HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("Vigie"), "no page over plain HTTP");

    cancel.cancel();
    let done = tokio::time::timeout(Duration::from_secs(10), server).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "serve returns after the shutdown signal: {done:?}");
}

#[test]
fn a_bad_certificate_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let files = crate::TlsFiles { cert: dir.path().join("cert.pem"), key: dir.path().join("key.pem") };
    std::fs::write(&files.cert, "not a certificate").unwrap();
    std::fs::write(&files.key, "no key").unwrap();
    let e = crate::tls_config(&files).unwrap_err().to_string();
    assert!(e.contains("cert.pem") && e.contains("PEM"), "{e}");
    let good = self_signed(dir.path());
    let other = tempfile::tempdir().unwrap();
    let mismatched = crate::TlsFiles { cert: good.cert, key: self_signed(other.path()).key };
    assert!(crate::tls_config(&mismatched).is_err(), "a key of another certificate is refused");
}

#[test]
fn route_table_paths_are_unique_and_each_has_a_handler() {
    let mut seen = std::collections::HashSet::new();
    for r in ROUTES {
        assert!(seen.insert((r.method, r.path)), "{} {} twice", r.method, r.path);
        assert!(matches!(r.method, "GET" | "POST"));
        assert_eq!(r.kind == Kind::Form, r.method == "POST", "{}", r.path);
        assert!(Method::from_bytes(r.method.as_bytes()).is_ok());
    }
    // Building the router panics on a route without a handler.
    let f = fixture();
    let _ = crate::router(f.state.clone());
}
