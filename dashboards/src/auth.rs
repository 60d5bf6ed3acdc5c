//! Login, logout, the access check every route goes through, CSRF tokens and rate limits.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use jiff::{SignedDuration, Timestamp};

use crate::app::AppState;
use crate::routes::{Access, Kind, RouteSpec};
use crate::server::ClientAddr;
use crate::users::{LoginRefusal, Role, Session};

/// The session cookie.
pub const SESSION_COOKIE: &str = "vigie_session";
/// The login form's double-submit CSRF cookie (there is no session yet to hold a token).
pub const LOGIN_CSRF_COOKIE: &str = "vigie_login_csrf";
/// Largest form body read.
const MAX_FORM: usize = 256 * 1024;

/// Sliding-window rate limits, keyed by client address or account.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    hits: Mutex<HashMap<String, VecDeque<Timestamp>>>,
}

impl RateLimiter {
    /// Records an attempt under `key`; false when `limit` attempts were already made in the
    /// last `window`.
    pub(crate) fn allow(&self, key: &str, limit: u32, window: SignedDuration, now: Timestamp) -> bool {
        let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        let since = now.checked_sub(window).unwrap_or(Timestamp::UNIX_EPOCH);
        if hits.len() > 10_000 {
            // Bound memory against address-spraying: forget keys with nothing recent.
            hits.retain(|_, q| q.back().is_some_and(|t| *t > since));
        }
        let queue = hits.entry(key.to_owned()).or_default();
        while queue.front().is_some_and(|t| *t <= since) {
            queue.pop_front();
        }
        if queue.len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
            return false;
        }
        queue.push_back(now);
        true
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure when asked.
pub(crate) fn set_cookie(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> HeaderValue {
    let mut s = format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/");
    if let Some(age) = max_age {
        s.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        s.push_str("; Secure");
    }
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// The client address: the connection's, or behind a trusted proxy the last one of
/// `X-Forwarded-For` (the one the proxy itself appended).
pub(crate) fn client_ip(request: &Request, behind_proxy: bool) -> Option<IpAddr> {
    if behind_proxy {
        let forwarded = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .and_then(|s| s.trim().parse().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    request.extensions().get::<axum::extract::ConnectInfo<ClientAddr>>().map(|c| c.0.0.ip())
}

/// Parses an `application/x-www-form-urlencoded` body.
pub(crate) fn parse_form(body: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode =
                |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
            (decode(k), decode(v))
        })
        .collect()
}

/// Compares two tokens in time independent of where they differ.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn refuse(status: StatusCode, text: &'static str, kind: Kind) -> Response {
    if matches!(kind, Kind::Page | Kind::Form) {
        (status, Html(crate::pages::error_page(status, text).into_string())).into_response()
    } else {
        (status, axum::Json(serde_json::json!({ "error": text }))).into_response()
    }
}

/// The access check of one route: session, role, machine clients, CSRF on forms. The
/// session, when there is one, is handed to the handler as an extension.
pub(crate) async fn guard(
    State((state, spec)): State<(AppState, &'static RouteSpec)>,
    request: Request,
    next: Next,
) -> Response {
    let session = match cookie(request.headers(), SESSION_COOKIE) {
        Some(token) => match state.session(token.to_owned()).await {
            Ok(s) => s,
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    let role_ok = |roles: &[Role]| session.as_ref().is_some_and(|s| roles.contains(&s.user.role));
    let allowed = match spec.access {
        Access::Public => true,
        Access::Roles(roles) => role_ok(roles),
        Access::Machine(roles) => {
            role_ok(roles)
                || (session.is_none()
                    && client_ip(&request, state.settings().behind_proxy)
                        .is_some_and(|ip| state.settings().machine_clients.contains(&ip)))
        }
    };
    if !allowed {
        return match (&session, spec.kind) {
            (None, Kind::Page) => {
                let next_path = request.uri().path_and_query().map_or("/", |p| p.as_str());
                let encoded = percent_encoding::utf8_percent_encode(next_path, percent_encoding::NON_ALPHANUMERIC);
                Redirect::to(&format!("/connexion?suite={encoded}")).into_response()
            }
            (None, kind) => refuse(StatusCode::UNAUTHORIZED, "Connexion requise.", kind),
            (Some(_), kind) if spec.hidden => refuse(StatusCode::NOT_FOUND, "Page introuvable.", kind),
            (Some(_), kind) => refuse(StatusCode::FORBIDDEN, "Votre rôle ne donne pas accès à cette page.", kind),
        };
    }
    let mut request = request;
    if request.method() == Method::POST && spec.access != Access::Public {
        // Synchronizer token: the form must carry the session's token (or the header, for scripts).
        let Some(s) = &session else {
            return refuse(StatusCode::UNAUTHORIZED, "Connexion requise.", spec.kind);
        };
        let header_token = request.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "Formulaire trop grand.", spec.kind);
        };
        let form_token = parse_form(&bytes).remove("csrf");
        let given = form_token.or(header_token).unwrap_or_default();
        if !same_token(&given, &s.csrf) {
            tracing::warn!(user = %s.user.name, path = spec.path, "form refused: CSRF token missing or wrong");
            return refuse(
                StatusCode::FORBIDDEN,
                "Formulaire expiré ou falsifié (jeton CSRF) : rechargez la page et recommencez.",
                spec.kind,
            );
        }
        request = Request::from_parts(parts, Body::from(bytes));
    }
    if let Some(s) = session {
        request.extensions_mut().insert(s);
    }
    next.run(request).await
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct LoginQuery {
    suite: Option<String>,
}

/// Only same-site paths are followed after login (no open redirect).
fn safe_next(next: Option<&str>) -> Option<&str> {
    next.filter(|p| p.starts_with('/') && !p.starts_with("//") && !p.contains('\\'))
}

fn login_form_response(state: &AppState, status: StatusCode, next: Option<&str>, error: Option<&str>) -> Response {
    let token = crate::users::random_token();
    let page = crate::pages::login(&token, safe_next(next), error);
    let mut response = (status, Html(page.into_string())).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(LOGIN_CSRF_COOKIE, &token, Some(3600), state.settings().cookie_secure));
    response
}

pub(crate) async fn login_page(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    login_form_response(&state, StatusCode::OK, q.suite.as_deref(), None)
}

pub(crate) async fn login_submit(State(state): State<AppState>, request: Request) -> Response {
    let now = state.now();
    let ip =
        client_ip(&request, state.settings().behind_proxy).map_or_else(|| "inconnue".to_owned(), |ip| ip.to_string());
    let cookie_token = cookie(request.headers(), LOGIN_CSRF_COOKIE).map(str::to_owned);
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_FORM).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let form = parse_form(&body);
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let next = form.get("suite").map(String::as_str);
    let limit = state.settings().login_attempts_per_minute;
    let minute = SignedDuration::from_mins(1);
    let user = get("utilisateur").trim().to_owned();
    if !state.limiter().allow(&format!("login-ip:{ip}"), limit, minute, now)
        || !state.limiter().allow(&format!("login-user:{user}"), limit, minute, now)
    {
        tracing::warn!(%ip, user, "login rate limit reached");
        let mut r = login_form_response(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            next,
            Some("Trop de tentatives de connexion : attendez une minute avant de réessayer."),
        );
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return r;
    }
    match cookie_token {
        Some(t) if same_token(&t, get("csrf")) && !t.is_empty() => {}
        _ => {
            return login_form_response(
                &state,
                StatusCode::FORBIDDEN,
                next,
                Some("Le formulaire a expiré : saisissez à nouveau vos identifiants."),
            );
        }
    }
    let (password, code) = (get("mot_de_passe").to_owned(), get("code").to_owned());
    match state.login(user.clone(), password, code, now).await {
        Ok(Ok((session, role))) => {
            tracing::info!(user, %ip, "login");
            let fallback = if role == Role::Legal { "/requisitions" } else { "/" };
            let target = safe_next(next).unwrap_or(fallback);
            let mut r = Redirect::to(target).into_response();
            let age = state.settings().session_lifetime.as_secs();
            let secure = state.settings().cookie_secure;
            r.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &session.token, Some(age), secure));
            r.headers_mut().append(header::SET_COOKIE, set_cookie(LOGIN_CSRF_COOKIE, "", Some(0), secure));
            r
        }
        Ok(Err(refusal)) => {
            tracing::warn!(user, %ip, ?refusal, "login refused");
            let text = match refusal {
                LoginRefusal::BadCode => "Code à usage unique manquant ou incorrect.",
                LoginRefusal::BadCredentials | LoginRefusal::Disabled => "Identifiant ou mot de passe incorrect.",
            };
            login_form_response(&state, StatusCode::UNAUTHORIZED, next, Some(text))
        }
        Err(e) => e.into_response(),
    }
}

pub(crate) async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = state.end_session(token.to_owned()).await
    {
        return e.into_response();
    }
    let mut r = Redirect::to("/connexion").into_response();
    r.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", Some(0), state.settings().cookie_secure));
    r
}

/// The session the guard put in the request (present on every non-public route).
pub(crate) type CurrentSession = axum::Extension<Session>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_slides() {
        let limiter = RateLimiter::default();
        let t0: Timestamp = "2025-04-07T12:00:00Z".parse().unwrap();
        let at = |s: i64| t0.checked_add(SignedDuration::from_secs(s)).unwrap();
        let minute = SignedDuration::from_mins(1);
        for s in [0, 10, 20] {
            assert!(limiter.allow("k", 3, minute, at(s)));
        }
        assert!(!limiter.allow("k", 3, minute, at(30)));
        assert!(limiter.allow("other", 3, minute, at(30)));
        assert!(limiter.allow("k", 3, minute, at(61)), "the first attempt left the window");
        assert!(!limiter.allow("k", 3, minute, at(61)), "the two others have not");
    }

    #[test]
    fn forms_cookies_and_redirects() {
        let form = parse_form(b"utilisateur=ana%C3%AFs&mot_de_passe=a+b%26c&csrf=x");
        assert_eq!(form["utilisateur"], "anaïs");
        assert_eq!(form["mot_de_passe"], "a b&c");
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; vigie_session=abc; b=2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
        let c = set_cookie(SESSION_COOKIE, "t", Some(60), true);
        assert_eq!(c.to_str().unwrap(), "vigie_session=t; HttpOnly; SameSite=Strict; Path=/; Max-Age=60; Secure");
        assert_eq!(safe_next(Some("/securite?periode=24h")), Some("/securite?periode=24h"));
        assert_eq!(safe_next(Some("//evil.example/")), None);
        assert_eq!(safe_next(Some("https://evil.example/")), None);
        assert!(same_token("abc", "abc") && !same_token("abc", "abd") && !same_token("abc", "ab"));
    }
}
