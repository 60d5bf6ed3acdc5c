//! The web interface of a running `vigie`: `vigie user` accounts, the demo's accounts, login
//! over HTTP, role checks and pages.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{free_port, vigie};

/// A demo account as the banner prints it.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub(crate) name: String,
    pub(crate) password: String,
    pub(crate) totp: Option<String>,
}

/// A `vigie demo` whose standard output (the banner) is kept in a file.
pub(crate) struct Demo {
    child: Child,
    pub(crate) base: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Demo {
    pub(crate) fn start(dir: &Path, extra: &[&str]) -> Demo {
        let port = free_port();
        let stdout = dir.join("demo.out");
        let stderr = dir.join("demo.log");
        let child = vigie()
            .args(["demo", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(dir.join("data"))
            .args(extra)
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start vigie demo");
        Demo { child, base: format!("http://127.0.0.1:{port}"), stdout, stderr }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The accounts of the banner, by role, once it is printed.
    pub(crate) fn accounts(&mut self) -> HashMap<String, Account> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let text = std::fs::read_to_string(&self.stdout).unwrap_or_default();
            let accounts: HashMap<String, Account> = text
                .lines()
                .filter_map(|l| {
                    let words: Vec<&str> = l.split_whitespace().collect();
                    let at = |key: &str| words.iter().position(|w| *w == key).and_then(|i| words.get(i + 1));
                    let name = words.first().filter(|w| w.starts_with("demo-"))?;
                    Some((
                        at("role")?.to_string(),
                        Account {
                            name: name.to_string(),
                            password: at("password")?.to_string(),
                            totp: words
                                .iter()
                                .position(|w| *w == "key")
                                .and_then(|i| words.get(i + 1))
                                .map(|s| s.to_string()),
                        },
                    ))
                })
                .collect();
            if accounts.len() == 5 {
                return accounts;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("vigie demo exited ({status}); log:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "no demo accounts in the banner:\n{text}\nlog:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// Status, Set-Cookie values and body of a request.
fn call(request: ureq::RequestBuilder<ureq::typestate::WithoutBody>) -> (u16, Vec<String>, String) {
    let mut r = request.call().unwrap();
    let cookies = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    (r.status().as_u16(), cookies, r.body_mut().read_to_string().unwrap_or_default())
}

fn cookie_value(cookies: &[String], name: &str) -> Option<String> {
    cookies.iter().find_map(|c| c.strip_prefix(&format!("{name}=")).map(|v| v.split(';').next().unwrap().to_owned()))
}

/// Logs in like a browser; returns the `Cookie` header value of the session.
fn login(base: &str, name: &str, password: &str) -> Result<String, (u16, String)> {
    let (_, cookies, _) = call(agent().get(&format!("{base}/connexion")));
    let token = cookie_value(&cookies, "vigie_login_csrf").expect("the login page sets its token cookie");
    let mut r = agent()
        .post(&format!("{base}/connexion"))
        .header("cookie", &format!("vigie_login_csrf={token}"))
        .send_form([("csrf", token.as_str()), ("utilisateur", name), ("mot_de_passe", password), ("code", "")])
        .unwrap();
    let status = r.status().as_u16();
    let cookies: Vec<String> =
        r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    match cookie_value(&cookies, "vigie_session") {
        Some(s) if status == 303 => Ok(format!("vigie_session={s}")),
        _ => Err((status, r.body_mut().read_to_string().unwrap_or_default())),
    }
}

fn get(base: &str, path: &str, cookie: &str) -> (u16, String) {
    let (status, _, body) = call(agent().get(&format!("{base}{path}")).header("cookie", cookie));
    (status, body)
}

#[test]
fn user_command_adds_lists_changes_and_disables_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let run = |args: &[&str], stdin: &str| {
        let mut child =
            vigie().args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) =
        run(&["user", "add", "--data", data, "--role", "approver", "sctn.dupont"], "un mot de passe long\n");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("sctn.dupont created with role approver"), "{out}");
    let (code, out, _) = run(&["user", "add", "--data", data, "--role", "legal", "juriste"], "un mot de passe long\n");
    assert_eq!(code, Some(0));
    assert!(out.contains("otpauth://totp/Vigie:juriste?secret="), "the legal role gets a second factor: {out}");
    let (code, _, err) = run(&["user", "add", "--data", data, "--role", "chef", "x"], "un mot de passe long\n");
    assert_ne!(code, Some(0));
    assert!(err.contains("`chef` is not a role"), "{err}");
    let (code, _, err) = run(&["user", "add", "--data", data, "--role", "viewer", "court"], "court\n");
    assert_ne!(code, Some(0));
    assert!(err.contains("at least 12 characters"), "{err}");
    let (code, _, _) = run(&["user", "passwd", "--data", data, "sctn.dupont"], "un autre mot de passe\n");
    assert_eq!(code, Some(0));
    let (code, _, _) = run(&["user", "disable", "--data", data, "juriste"], "");
    assert_eq!(code, Some(0));
    let (code, out, _) = run(&["user", "list", "--data", data], "");
    assert_eq!(code, Some(0));
    let line = |name: &str| out.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{out}")).to_owned();
    assert!(line("juriste").contains("legal") && line("juriste").contains("disabled"), "{out}");
    assert!(line("sctn.dupont").contains("approver") && line("sctn.dupont").contains("active"), "{out}");
    let (code, _, err) = run(&["user", "disable", "--data", data, "personne"], "");
    assert_ne!(code, Some(0));
    assert!(err.contains("no account named `personne`"), "{err}");
}

#[test]
fn demo_accounts_log_in_and_each_role_sees_its_pages() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Demo::start(dir.path(), &["--for", "60s", "--rate", "200"]);
    let accounts = demo.accounts();
    let base = demo.base.clone();
    // Anonymous: sent to the login page; machine endpoints from 127.0.0.1 still answer.
    let (status, cookies, _) = call(agent().get(&format!("{base}/")));
    assert_eq!(status, 303);
    assert!(cookies.is_empty());
    let (status, _, _) = call(agent().get(&format!("{base}/metrics")));
    assert_eq!(status, 200, "Prometheus on the same machine reads /metrics");

    let viewer = &accounts["viewer"];
    assert!(login(&base, &viewer.name, "not the password").is_err());
    let cookie = login(&base, &viewer.name, &viewer.password).unwrap_or_else(|e| panic!("{e:?}\n{}", demo.log()));
    let (status, page) = get(&base, "/", &cookie);
    assert_eq!(status, 200);
    assert!(page.contains("Vue d’ensemble") && page.contains("État des composants"), "{page}");
    assert!(!page.contains("Réquisitions"));
    assert_eq!(get(&base, "/requisitions", &cookie).0, 404);
    for path in ["/disponibilite", "/securite", "/saturation", "/trafic", "/incidents", "/sante", "/api/v1/overview"] {
        assert_eq!(get(&base, path, &cookie).0, 200, "{path}");
    }
    // The legal account needs its one-time code: a password alone is refused.
    let legal = &accounts["legal"];
    assert!(legal.totp.is_some(), "the banner prints the legal account's TOTP key");
    assert_eq!(login(&base, &legal.name, &legal.password).unwrap_err().0, 401);
}
