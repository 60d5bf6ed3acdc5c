//! Local accounts and login sessions, in one SQLite file.
//!
//! Passwords are stored as Argon2id PHC strings; a second factor is an RFC 6238 one-time code
//! (mandatory for the legal role, whose searches reach the connection archive). Session tokens
//! are random and only their SHA-256 is stored, so a copy of the database opens no session.

use std::path::Path;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use jiff::{SignedDuration, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

/// The schema version this code writes; a newer file is refused.
const USERS_FORMAT: i64 = 1;
/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;
/// One-time codes: 6 digits, 30 s steps, one step of clock skew either side.
const TOTP_STEP: u64 = 30;

/// What an account may do. Roles are not ranked: the legal role sees only requisitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads the dashboards.
    Viewer,
    /// Reads the dashboards, acknowledges and silences alerts.
    OnCall,
    /// The city's IT service: reads the dashboards, approves outage notices.
    Approver,
    /// The legal officer: requisition search and its audit log only.
    Legal,
    /// Everything but the requisition search.
    Admin,
}

impl Role {
    /// Every role, in the order they are listed.
    pub const ALL: [Role; 5] = [Role::Viewer, Role::OnCall, Role::Approver, Role::Legal, Role::Admin];

    /// The name used on the command line and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::OnCall => "on-call",
            Role::Approver => "approver",
            Role::Legal => "legal",
            Role::Admin => "admin",
        }
    }

    /// The role as the city's staff read it.
    pub fn label_fr(self) -> &'static str {
        match self {
            Role::Viewer => "lecture",
            Role::OnCall => "astreinte",
            Role::Approver => "validation (service informatique)",
            Role::Legal => "réquisitions (juridique)",
            Role::Admin => "administration",
        }
    }

    /// Parses a role name (`viewer`, `on-call`, `approver`, `legal`, `admin`).
    pub fn parse(s: &str) -> Result<Role, UserError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s || (s == "oncall" && *r == Role::OnCall))
            .ok_or_else(|| UserError::BadRole(s.to_owned()))
    }

    /// Whether accounts of this role must give a one-time code at login.
    pub fn requires_totp(self) -> bool {
        self == Role::Legal
    }
}

/// An account, without its secrets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    /// Whether a one-time code is asked at login.
    pub totp: bool,
    pub created: Timestamp,
}

/// An open login session.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    /// The synchronizer token every form of this session must carry.
    pub csrf: String,
    pub expires: Timestamp,
}

/// A session just created: the cookie value (shown once, never stored) and its CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub csrf: String,
    pub expires: Timestamp,
}

/// A demo account and its clear password, printed in `vigie demo`'s banner.
#[derive(Debug, Clone)]
pub struct DemoAccount {
    pub name: String,
    pub role: Role,
    pub password: String,
    /// Base32 TOTP secret, for the roles that need one.
    pub totp_secret: Option<String>,
}

/// What went wrong with the account store.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("account database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "the account database has format version {found}, newer than this Vigie ({supported}); upgrade Vigie or restore the old file"
    )]
    NewerFormat { found: i64, supported: i64 },
    #[error("`{0}` is not a role; the roles are viewer, on-call, approver, legal and admin")]
    BadRole(String),
    #[error("the account `{0}` already exists; use `vigie user passwd` to change its password")]
    Exists(String),
    #[error("no account named `{0}`; `vigie user list` shows the accounts")]
    NoSuchUser(String),
    #[error("`{0}` is not a valid account name: use 1 to 64 letters, digits, `.`, `-`, `_` or `@`")]
    BadName(String),
    #[error("the password is too short: at least {MIN_PASSWORD_LEN} characters")]
    WeakPassword,
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("one-time code setup failed: {0}")]
    Totp(String),
}

/// Why a login was refused. The page says only "identifiants incorrects" whatever the cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    BadCredentials,
    Disabled,
    /// The account has a second factor and the code was missing, wrong or already used.
    BadCode,
}

/// The account store.
#[derive(Debug)]
pub struct UserStore {
    conn: Connection,
}

fn sha256_hex(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random token (256 bits, hex) for cookies and forms.
pub(crate) fn random_token() -> String {
    random_hex(32)
}

fn random_hex(bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

/// A random password of `len` characters without look-alike letters.
fn random_password(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..len).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}

fn hash_password(password: &str) -> Result<String, UserError> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| UserError::Hash(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash of a password nobody knows, checked for unknown accounts so that a login takes the
/// same time whether or not the account exists.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_password(24)).unwrap_or_default())
}

fn totp(secret_b32: &str) -> Result<totp_rs::TOTP, UserError> {
    let bytes =
        totp_rs::Secret::Encoded(secret_b32.to_owned()).to_bytes().map_err(|e| UserError::Totp(e.to_string()))?;
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, TOTP_STEP, bytes).map_err(|e| UserError::Totp(e.to_string()))
}

/// The current one-time code of a base32 secret (what an authenticator app shows).
pub fn totp_code(secret_b32: &str, now: Timestamp) -> Result<String, UserError> {
    Ok(totp(secret_b32)?.generate(u64::try_from(now.as_second()).unwrap_or(0)))
}

/// A new random base32 secret (160 bits, as RFC 4226 recommends).
fn new_totp_secret() -> String {
    let bytes: [u8; 20] = rand::random();
    match totp_rs::Secret::Raw(bytes.to_vec()).to_encoded() {
        totp_rs::Secret::Encoded(s) => s,
        totp_rs::Secret::Raw(_) => unreachable!("to_encoded returns the encoded form"),
    }
}

/// The `otpauth://` URI an authenticator app reads (usually as a QR code).
pub fn otpauth_uri(user: &str, secret_b32: &str) -> String {
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
    format!(
        "otpauth://totp/Vigie:{}?secret={secret_b32}&issuer=Vigie&algorithm=SHA1&digits=6&period={TOTP_STEP}",
        enc(user)
    )
}

fn check_name(name: &str) -> Result<(), UserError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'));
    if ok { Ok(()) } else { Err(UserError::BadName(name.to_owned())) }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
}

impl UserStore {
    /// Opens (creating if needed) the account database at `path`.
    pub fn open(path: &Path) -> Result<UserStore, UserError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > USERS_FORMAT {
            return Err(UserError::NewerFormat { found: version, supported: USERS_FORMAT });
        }
        if version < 1 {
            conn.execute_batch(
                "BEGIN;
                 CREATE TABLE IF NOT EXISTS users (
                    name TEXT PRIMARY KEY,
                    role TEXT NOT NULL,
                    password TEXT NOT NULL,
                    totp_secret TEXT,
                    totp_last_step INTEGER NOT NULL DEFAULT 0,
                    disabled INTEGER NOT NULL DEFAULT 0,
                    created TEXT NOT NULL,
                    demo INTEGER NOT NULL DEFAULT 0
                 );
                 CREATE TABLE IF NOT EXISTS sessions (
                    token_sha256 TEXT PRIMARY KEY,
                    user TEXT NOT NULL REFERENCES users(name),
                    csrf TEXT NOT NULL,
                    created TEXT NOT NULL,
                    last_seen TEXT NOT NULL,
                    expires TEXT NOT NULL
                 );
                 PRAGMA user_version = 1;
                 COMMIT;",
            )?;
        }
        Ok(UserStore { conn })
    }

    /// Creates an account. Returns the TOTP secret when the account gets a second factor
    /// (always for the legal role, or when `totp` is asked).
    pub fn add(
        &mut self,
        name: &str,
        role: Role,
        password: &str,
        totp: bool,
        now: Timestamp,
    ) -> Result<Option<String>, UserError> {
        check_name(name)?;
        if password.chars().count() < MIN_PASSWORD_LEN {
            return Err(UserError::WeakPassword);
        }
        let exists: bool =
            self.conn.query_row("SELECT COUNT(*) FROM users WHERE name = ?1", [name], |r| r.get::<_, i64>(0))? > 0;
        if exists {
            return Err(UserError::Exists(name.to_owned()));
        }
        let secret = (totp || role.requires_totp()).then(new_totp_secret);
        let hash = hash_password(password)?;
        self.conn.execute(
            "INSERT INTO users (name, role, password, totp_secret, created) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, role.as_str(), hash, secret, now.to_string()],
        )?;
        Ok(secret)
    }

    /// Replaces an account's password and closes its sessions.
    pub fn set_password(&mut self, name: &str, password: &str) -> Result<(), UserError> {
        if password.chars().count() < MIN_PASSWORD_LEN {
            return Err(UserError::WeakPassword);
        }
        let hash = hash_password(password)?;
        let n = self.conn.execute("UPDATE users SET password = ?2 WHERE name = ?1", params![name, hash])?;
        if n == 0 {
            return Err(UserError::NoSuchUser(name.to_owned()));
        }
        self.conn.execute("DELETE FROM sessions WHERE user = ?1", [name])?;
        Ok(())
    }

    /// Disables an account (kept for the audit trail) and closes its sessions.
    pub fn disable(&mut self, name: &str) -> Result<(), UserError> {
        let n = self.conn.execute("UPDATE users SET disabled = 1 WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(UserError::NoSuchUser(name.to_owned()));
        }
        self.conn.execute("DELETE FROM sessions WHERE user = ?1", [name])?;
        Ok(())
    }

    /// Every account, by name.
    pub fn list(&self) -> Result<Vec<User>, UserError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, role, disabled, totp_secret IS NOT NULL, created FROM users ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, bool>(2)?,
                r.get(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut users = Vec::new();
        for row in rows {
            let (name, role, disabled, totp, created) = row?;
            users.push(User { name, role: Role::parse(&role)?, disabled, totp, created: ts(&created) });
        }
        Ok(users)
    }

    /// Checks a login. The code is required when the account has a second factor; a code is
    /// accepted once (a replayed code is refused).
    pub fn verify(
        &mut self,
        name: &str,
        password: &str,
        code: Option<&str>,
        now: Timestamp,
    ) -> Result<Result<User, LoginRefusal>, UserError> {
        let row: Option<(String, String, Option<String>, i64, bool, String)> = self
            .conn
            .query_row(
                "SELECT role, password, totp_secret, totp_last_step, disabled, created FROM users WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .optional()?;
        let Some((role, hash, secret, last_step, disabled, created)) = row else {
            verify_password(password, dummy_hash());
            return Ok(Err(LoginRefusal::BadCredentials));
        };
        if !verify_password(password, &hash) {
            return Ok(Err(LoginRefusal::BadCredentials));
        }
        if disabled {
            return Ok(Err(LoginRefusal::Disabled));
        }
        if let Some(secret) = &secret {
            let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
                return Ok(Err(LoginRefusal::BadCode));
            };
            let totp = totp(secret)?;
            let now_step = u64::try_from(now.as_second()).unwrap_or(0) / TOTP_STEP;
            let matched = [now_step.saturating_sub(1), now_step, now_step + 1].into_iter().find(|step| {
                i64::try_from(*step).unwrap_or(i64::MAX) > last_step && totp.generate(step * TOTP_STEP) == code
            });
            let Some(step) = matched else {
                return Ok(Err(LoginRefusal::BadCode));
            };
            self.conn.execute(
                "UPDATE users SET totp_last_step = ?2 WHERE name = ?1",
                params![name, i64::try_from(step).unwrap_or(i64::MAX)],
            )?;
        }
        Ok(Ok(User {
            name: name.to_owned(),
            role: Role::parse(&role)?,
            disabled,
            totp: secret.is_some(),
            created: ts(&created),
        }))
    }

    /// Opens a session for `user`, valid until `now + ttl`.
    pub fn create_session(&mut self, user: &str, now: Timestamp, ttl: SignedDuration) -> Result<NewSession, UserError> {
        let token = random_hex(32);
        let csrf = random_hex(32);
        let expires = now.checked_add(ttl).unwrap_or(now);
        self.conn.execute(
            "INSERT INTO sessions (token_sha256, user, csrf, created, last_seen, expires) VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
            params![sha256_hex(&token), user, csrf, now.to_string(), expires.to_string()],
        )?;
        self.conn.execute("DELETE FROM sessions WHERE expires < ?1", [now.to_string()])?;
        Ok(NewSession { token, csrf, expires })
    }

    /// The session a cookie value opens, if it is still valid: not expired, not idle for more
    /// than `idle`, and its account still enabled. A valid use counts as activity.
    pub fn session(&mut self, token: &str, now: Timestamp, idle: SignedDuration) -> Result<Option<Session>, UserError> {
        let key = sha256_hex(token);
        // user, csrf, last_seen, expires, role, created, disabled, has TOTP, session created.
        type SessionRow = (String, String, String, String, String, String, bool, bool, String);
        let row: Option<SessionRow> = self
            .conn
            .query_row(
                "SELECT s.user, s.csrf, s.last_seen, s.expires, u.role, u.created, u.disabled, u.totp_secret IS NOT NULL, s.created
                 FROM sessions s JOIN users u ON u.name = s.user WHERE s.token_sha256 = ?1",
                [&key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?)),
            )
            .optional()?;
        let Some((name, csrf, last_seen, expires, role, created, disabled, totp, _)) = row else {
            return Ok(None);
        };
        let expires = ts(&expires);
        let idle_until = ts(&last_seen).checked_add(idle).unwrap_or(Timestamp::UNIX_EPOCH);
        if disabled || now >= expires || now >= idle_until {
            self.conn.execute("DELETE FROM sessions WHERE token_sha256 = ?1", [&key])?;
            return Ok(None);
        }
        self.conn
            .execute("UPDATE sessions SET last_seen = ?2 WHERE token_sha256 = ?1", params![key, now.to_string()])?;
        Ok(Some(Session {
            user: User { name, role: Role::parse(&role)?, disabled, totp, created: ts(&created) },
            csrf,
            expires,
        }))
    }

    /// Closes a session (logout).
    pub fn delete_session(&mut self, token: &str) -> Result<(), UserError> {
        self.conn.execute("DELETE FROM sessions WHERE token_sha256 = ?1", [sha256_hex(token)])?;
        Ok(())
    }

    /// For `vigie demo`: one account per role (`demo-viewer`, `demo-on-call`…), each given a
    /// new random password at every start, which the banner prints.
    pub fn reset_demo_accounts(&mut self, now: Timestamp) -> Result<Vec<DemoAccount>, UserError> {
        let mut out = Vec::new();
        for role in Role::ALL {
            let name = format!("demo-{}", role.as_str());
            let password = random_password(16);
            let secret = role.requires_totp().then(new_totp_secret);
            let hash = hash_password(&password)?;
            self.conn.execute(
                "INSERT INTO users (name, role, password, totp_secret, created, demo) VALUES (?1, ?2, ?3, ?4, ?5, 1)
                 ON CONFLICT(name) DO UPDATE SET role = ?2, password = ?3, totp_secret = ?4, totp_last_step = 0, disabled = 0",
                params![name, role.as_str(), hash, secret, now.to_string()],
            )?;
            self.conn.execute("DELETE FROM sessions WHERE user = ?1", [&name])?;
            out.push(DemoAccount { name, role, password, totp_secret: secret });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, UserStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = UserStore::open(&dir.path().join("users.sqlite")).unwrap();
        (dir, store)
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn password_login_and_refusals() {
        let (_dir, mut s) = store();
        let now = t("2025-04-07T12:00:00Z");
        assert!(s.add("alice", Role::Viewer, "correct horse battery", false, now).unwrap().is_none());
        assert!(matches!(s.add("alice", Role::Viewer, "correct horse battery", false, now), Err(UserError::Exists(_))));
        assert!(matches!(s.add("bob", Role::Viewer, "short", false, now), Err(UserError::WeakPassword)));
        assert!(matches!(s.add("b ob", Role::Viewer, "long enough password", false, now), Err(UserError::BadName(_))));
        assert_eq!(s.verify("alice", "correct horse battery", None, now).unwrap().unwrap().role, Role::Viewer);
        assert_eq!(s.verify("alice", "wrong horse battery", None, now).unwrap(), Err(LoginRefusal::BadCredentials));
        assert_eq!(s.verify("nobody", "correct horse battery", None, now).unwrap(), Err(LoginRefusal::BadCredentials));
        s.set_password("alice", "another long password").unwrap();
        assert!(s.verify("alice", "correct horse battery", None, now).unwrap().is_err());
        assert!(s.verify("alice", "another long password", None, now).unwrap().is_ok());
        s.disable("alice").unwrap();
        assert_eq!(s.verify("alice", "another long password", None, now).unwrap(), Err(LoginRefusal::Disabled));
        assert!(s.list().unwrap()[0].disabled);
        assert!(matches!(s.disable("nobody"), Err(UserError::NoSuchUser(_))));
    }

    #[test]
    fn the_legal_role_needs_a_one_time_code_used_once() {
        let (_dir, mut s) = store();
        let now = t("2025-04-07T12:00:00Z");
        let secret = s.add("juriste", Role::Legal, "correct horse battery", false, now).unwrap().expect("a secret");
        assert_eq!(s.verify("juriste", "correct horse battery", None, now).unwrap(), Err(LoginRefusal::BadCode));
        let right = totp_code(&secret, now).unwrap();
        let wrong = if right == "123456" { "654321" } else { "123456" };
        assert_eq!(s.verify("juriste", "correct horse battery", Some(wrong), now).unwrap(), Err(LoginRefusal::BadCode));
        let code = totp_code(&secret, now).unwrap();
        assert!(s.verify("juriste", "correct horse battery", Some(&code), now).unwrap().is_ok());
        // The same code a second time: refused (replay).
        assert_eq!(s.verify("juriste", "correct horse battery", Some(&code), now).unwrap(), Err(LoginRefusal::BadCode));
        let later = now.checked_add(SignedDuration::from_secs(60)).unwrap();
        let code = totp_code(&secret, later).unwrap();
        assert!(s.verify("juriste", "correct horse battery", Some(&code), later).unwrap().is_ok());
        assert!(otpauth_uri("juriste", &secret).starts_with("otpauth://totp/Vigie:juriste?secret="));
    }

    #[test]
    fn sessions_expire_when_idle_or_old_and_close_on_disable() {
        let (_dir, mut s) = store();
        let now = t("2025-04-07T12:00:00Z");
        s.add("alice", Role::OnCall, "correct horse battery", false, now).unwrap();
        let ttl = SignedDuration::from_hours(8);
        let idle = SignedDuration::from_mins(30);
        let new = s.create_session("alice", now, ttl).unwrap();
        let later = |m: i64| now.checked_add(SignedDuration::from_mins(m)).unwrap();
        let session = s.session(&new.token, later(20), idle).unwrap().expect("valid");
        assert_eq!(session.csrf, new.csrf);
        assert_eq!(session.user.role, Role::OnCall);
        assert!(s.session("not-a-token", later(20), idle).unwrap().is_none());
        // Activity at 20 min keeps it open at 45 min; 31 min of silence closes it.
        assert!(s.session(&new.token, later(45), idle).unwrap().is_some());
        assert!(s.session(&new.token, later(77), idle).unwrap().is_none());
        assert!(s.session(&new.token, later(78), idle).unwrap().is_none(), "deleted, not revived");
        // The absolute lifetime wins over activity.
        let new = s.create_session("alice", now, ttl).unwrap();
        for m in (25..480).step_by(25) {
            assert!(s.session(&new.token, later(m), idle).unwrap().is_some(), "{m}");
        }
        assert!(s.session(&new.token, later(481), idle).unwrap().is_none());
        let new = s.create_session("alice", now, ttl).unwrap();
        s.disable("alice").unwrap();
        assert!(s.session(&new.token, later(1), idle).unwrap().is_none());
    }

    #[test]
    fn demo_accounts_get_fresh_passwords_at_each_start() {
        let (_dir, mut s) = store();
        let now = t("2025-04-07T12:00:00Z");
        let first = s.reset_demo_accounts(now).unwrap();
        assert_eq!(first.len(), Role::ALL.len());
        let second = s.reset_demo_accounts(now).unwrap();
        for (a, b) in first.iter().zip(&second) {
            assert_ne!(a.password, b.password);
            assert!(s.verify(&a.name, &a.password, None, now).unwrap().is_err() || a.totp_secret.is_some());
        }
        let legal = second.iter().find(|a| a.role == Role::Legal).unwrap();
        let code = totp_code(legal.totp_secret.as_deref().unwrap(), now).unwrap();
        assert!(s.verify(&legal.name, &legal.password, Some(&code), now).unwrap().is_ok());
        let viewer = &second[0];
        assert!(s.verify(&viewer.name, &viewer.password, None, now).unwrap().is_ok());
    }

    #[test]
    fn a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.sqlite");
        Connection::open(&path).unwrap().pragma_update(None, "user_version", 9).unwrap();
        assert!(matches!(UserStore::open(&path), Err(UserError::NewerFormat { found: 9, .. })));
    }
}
