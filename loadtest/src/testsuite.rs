//! Servers for tests (feature `testsuite`): an ENT look-alike that really checks session
//! cookies and CSRF tokens, and a server that injects faults on request.
//!
//! The ENT server answers the routes of `scenarios/ent-blog.yml` (Beneylu School-like):
//! `GET /login` (session cookie + CSRF token in a hidden input), `POST /login_check`,
//! `GET /classe/blog` (article form with its own token), `POST /classe/blog/articles`
//! (JSON with the new article's id), `GET /classe/blog/articles/{id}`, `GET /logout`.
//! Every check that fails is counted, so a test can assert that nothing was accepted by luck.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the ENT server saw.
#[derive(Debug, Default)]
pub struct EntCounters {
    /// TCP connections accepted.
    pub connections: AtomicU64,
    /// Login pages served (sessions opened).
    pub login_pages: AtomicU64,
    /// Logins with a valid session cookie, CSRF token and password.
    pub logins: AtomicU64,
    /// Blog pages served to a logged-in session.
    pub blog_pages: AtomicU64,
    /// Articles created with a valid session and article token.
    pub articles: AtomicU64,
    /// Articles read back by their id.
    pub article_reads: AtomicU64,
    /// Sessions closed by /logout.
    pub logouts: AtomicU64,
    /// Requests refused: missing or unknown session cookie, wrong token, wrong password,
    /// not logged in, unknown article.
    pub rejected: AtomicU64,
}

#[derive(Debug)]
struct Session {
    csrf: String,
    user: Option<String>,
    article_token: Option<String>,
}

#[derive(Debug, Default)]
struct Ent {
    counters: Arc<EntCounters>,
    sessions: Mutex<HashMap<String, Session>>,
    next: AtomicU64,
    /// Article id → author.
    articles: Mutex<HashMap<u64, String>>,
}

/// A running ENT look-alike.
#[derive(Debug)]
pub struct EntServer {
    /// Where it listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    /// What it saw.
    pub counters: Arc<EntCounters>,
}

/// The password every test account has.
pub const PASSWORD: &str = "motdepasse-test";

impl EntServer {
    /// Starts the server on a free loopback port, in the current tokio runtime.
    pub async fn start() -> std::io::Result<EntServer> {
        let counters = Arc::new(EntCounters::default());
        let state = Arc::new(Ent { counters: counters.clone(), ..Ent::default() });
        let app = axum::Router::new()
            .route("/login", get(login_page))
            .route("/login_check", post(login_check))
            .route("/classe/blog", get(blog))
            .route("/classe/blog/articles", post(post_article))
            .route("/classe/blog/articles/{id}", get(read_article))
            .route("/logout", get(logout))
            .with_state(state);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let count = counters.clone();
        let listener = listener.tap_io(move |_| {
            count.connections.fetch_add(1, Ordering::Relaxed);
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(EntServer { addr, counters })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == "PHPSESSID")
        .map(|(_, v)| v.to_owned())
}

fn reject(ent: &Ent, status: StatusCode) -> Response {
    ent.counters.rejected.fetch_add(1, Ordering::Relaxed);
    status.into_response()
}

async fn login_page(State(ent): State<Arc<Ent>>) -> Response {
    let n = ent.next.fetch_add(1, Ordering::Relaxed);
    let id = format!("s{n:08x}");
    let csrf = format!("csrf{:016x}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    ent.sessions.lock().unwrap().insert(id.clone(), Session { csrf: csrf.clone(), user: None, article_token: None });
    ent.counters.login_pages.fetch_add(1, Ordering::Relaxed);
    let page = format!(
        r#"<!doctype html><html lang="fr"><head><title>Connexion</title></head><body>
<form method="post" action="/login_check">
<input type="text" name="_username" id="username">
<input type="password" name="_password" id="password">
<input type="hidden" name="_csrf_token" value="{csrf}">
<button type="submit">Se connecter</button></form></body></html>"#
    );
    ([(header::SET_COOKIE, format!("PHPSESSID={id}; path=/; HttpOnly"))], Html(page)).into_response()
}

async fn login_check(
    State(ent): State<Arc<Ent>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(id) = session_id(&headers) else { return reject(&ent, StatusCode::FORBIDDEN) };
    let mut sessions = ent.sessions.lock().unwrap();
    let Some(session) = sessions.get_mut(&id) else { return reject(&ent, StatusCode::FORBIDDEN) };
    let ok = form.get("_csrf_token") == Some(&session.csrf)
        && form.get("_password").map(String::as_str) == Some(PASSWORD)
        && form.get("_username").is_some_and(|u| !u.is_empty());
    if !ok {
        drop(sessions);
        return reject(&ent, StatusCode::FORBIDDEN);
    }
    session.user = form.get("_username").cloned();
    ent.counters.logins.fetch_add(1, Ordering::Relaxed);
    (StatusCode::FOUND, [(header::LOCATION, "/classe/blog")]).into_response()
}

async fn blog(State(ent): State<Arc<Ent>>, headers: HeaderMap) -> Response {
    let Some(id) = session_id(&headers) else { return reject(&ent, StatusCode::FOUND) };
    let mut sessions = ent.sessions.lock().unwrap();
    let Some(session) = sessions.get_mut(&id).filter(|s| s.user.is_some()) else {
        drop(sessions);
        return reject(&ent, StatusCode::FOUND);
    };
    let token = format!("art{}", id.chars().rev().collect::<String>());
    session.article_token = Some(token.clone());
    let user = session.user.clone().unwrap_or_default();
    drop(sessions);
    ent.counters.blog_pages.fetch_add(1, Ordering::Relaxed);
    Html(format!(
        r#"<!doctype html><html lang="fr"><body><h1 class="title">Le blog de la classe de {user}</h1>
<form name="article" method="post" action="/classe/blog/articles">
<input type="text" name="article[title]"><textarea name="article[content]"></textarea>
<input type="hidden" id="article__token" name="article[_token]" value="{token}">
</form></body></html>"#
    ))
    .into_response()
}

async fn post_article(
    State(ent): State<Arc<Ent>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(id) = session_id(&headers) else { return reject(&ent, StatusCode::FORBIDDEN) };
    let user = {
        let sessions = ent.sessions.lock().unwrap();
        match sessions.get(&id) {
            Some(s)
                if s.user.is_some()
                    && s.article_token.is_some()
                    && form.get("article[_token]") == s.article_token.as_ref() =>
            {
                s.user.clone().unwrap_or_default()
            }
            _ => {
                drop(sessions);
                return reject(&ent, StatusCode::FORBIDDEN);
            }
        }
    };
    if form.get("article[title]").is_none_or(|t| t.is_empty()) {
        return reject(&ent, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let article = ent.counters.articles.fetch_add(1, Ordering::Relaxed) + 1;
    ent.articles.lock().unwrap().insert(article, user);
    (StatusCode::CREATED, axum::Json(serde_json::json!({"article": {"id": article, "status": "publié"}})))
        .into_response()
}

async fn read_article(State(ent): State<Arc<Ent>>, headers: HeaderMap, Path(article): Path<u64>) -> Response {
    let user = session_id(&headers).and_then(|id| ent.sessions.lock().unwrap().get(&id).and_then(|s| s.user.clone()));
    let author = ent.articles.lock().unwrap().get(&article).cloned();
    match (user, author) {
        (Some(u), Some(a)) if u == a => {
            ent.counters.article_reads.fetch_add(1, Ordering::Relaxed);
            Html(format!("<article><h2>Article {article}</h2><p>par {a}</p></article>")).into_response()
        }
        _ => reject(&ent, StatusCode::NOT_FOUND),
    }
}

async fn logout(State(ent): State<Arc<Ent>>, headers: HeaderMap) -> Response {
    let Some(id) = session_id(&headers) else { return reject(&ent, StatusCode::FORBIDDEN) };
    if ent.sessions.lock().unwrap().remove(&id).is_none() {
        return reject(&ent, StatusCode::FORBIDDEN);
    }
    ent.counters.logouts.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, "/login".to_owned()),
            (
                header::SET_COOKIE,
                "PHPSESSID=deleted; expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0; path=/".to_owned(),
            ),
        ],
    )
        .into_response()
}

/// A plain HTTP/1.1 server that misbehaves on purpose, by path:
/// `/fault/{n}` with `n % 5` = 0 → 200 with `token=ok{n}`; 1 → 500; 2 → 404; 3 → connection
/// reset (RST, no response); 4 → 200 without a token. `/slow` answers only after `slow`.
/// `/after/{token}` → 200. Anything else → 400.
#[derive(Debug)]
pub struct FaultServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests answered `/after/…` (the step after a successful extraction).
    pub after: Arc<AtomicU64>,
}

impl FaultServer {
    /// Starts it; slow answers wait `slow`.
    pub async fn start(slow: Duration) -> std::io::Result<FaultServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let after = Arc::new(AtomicU64::new(0));
        let count = after.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(fault_connection(stream, slow, count.clone()));
            }
        });
        Ok(FaultServer { addr, after })
    }
}

async fn fault_connection(mut stream: TcpStream, slow: Duration, after: Arc<AtomicU64>) {
    let mut buf = Vec::with_capacity(1024);
    loop {
        // Read one request head (these requests have no body).
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 1024];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end);
        let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
        let reply = |status: &str, body: &str| {
            format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n{body}", body.len())
        };
        let response = if let Some(n) = path.strip_prefix("/fault/").and_then(|n| n.parse::<u64>().ok()) {
            match n % 5 {
                0 => reply("200 OK", &format!("token=ok{n}")),
                1 => reply("500 Internal Server Error", "panne"),
                2 => reply("404 Not Found", "absent"),
                3 => {
                    let _ = stream.set_zero_linger();
                    return;
                }
                _ => reply("200 OK", "pas de jeton ici"),
            }
        } else if path == "/slow" {
            tokio::time::sleep(slow).await;
            reply("200 OK", "enfin")
        } else if path.starts_with("/after/ok") {
            after.fetch_add(1, Ordering::Relaxed);
            reply("200 OK", "suite")
        } else {
            reply("400 Bad Request", "chemin inconnu")
        };
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}
