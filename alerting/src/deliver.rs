//! Email delivery from the outbox: SMTP (lettre, async tokio) or `.eml` files in a directory.
//!
//! A retryable failure (connection refused, timeout, 4xx reply) keeps the email queued with an
//! exponential, jittered backoff persisted in its row; a permanent one (5xx reply, invalid
//! address) marks it failed with the reason and is never retried. Delivery is at-least-once:
//! an email accepted by the server just before a crash is sent again after the restart, with
//! the same Message-ID.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, Message, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio_util::sync::CancellationToken;

use crate::outbox::{Outbox, OutboxEntry};
use crate::{AlertError, AlertingMetrics};

/// How emails leave Vigie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// An SMTP relay.
    Smtp {
        host: String,
        port: u16,
        /// Require STARTTLS (certificates checked against the system's trust store).
        starttls: bool,
        username: Option<String>,
        /// Name of the environment variable holding the password: secrets never sit in the
        /// configuration file or in logs.
        password_env: Option<String>,
    },
    /// Writes each email as an `.eml` file into this directory (no mail server at hand).
    Directory(PathBuf),
}

/// How long one SMTP exchange may take before it counts as a retryable failure.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How many due emails one pass takes from the outbox.
const BATCH: usize = 32;
/// How often the outbox is polled for new or due emails; the alert store queues them from
/// another connection, so polling is the simple, restart-proof signal.
const POLL: Duration = Duration::from_secs(1);

/// A configured sender, built once from a [`Transport`].
#[derive(Debug, Clone)]
pub struct Mailer {
    inner: MailerInner,
}

#[derive(Debug, Clone)]
enum MailerInner {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
}

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Sent,
    Retryable(String),
    Permanent(String),
}

impl Mailer {
    /// Builds the sender. Reads the SMTP password from the named environment variable, and
    /// creates the `.eml` directory if needed.
    pub fn new(transport: &Transport) -> Result<Mailer, AlertError> {
        match transport {
            Transport::Directory(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| AlertError::Directory { path: dir.clone(), source })?;
                Ok(Mailer { inner: MailerInner::File(AsyncFileTransport::new(dir)) })
            }
            Transport::Smtp { host, port, starttls, username, password_env } => {
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                    .port(*port)
                    .timeout(Some(SMTP_TIMEOUT));
                if *starttls {
                    let params = TlsParameters::new(host.clone())
                        .map_err(|e| AlertError::Transport { host: host.clone(), reason: e.to_string() })?;
                    builder = builder.tls(Tls::Required(params));
                }
                match (username, password_env) {
                    (Some(user), Some(var)) => {
                        let password =
                            std::env::var(var).map_err(|_| AlertError::MissingPassword { var: var.clone() })?;
                        builder = builder.credentials(Credentials::new(user.clone(), password));
                    }
                    (None, None) => {}
                    (Some(_), None) | (None, Some(_)) => {
                        return Err(AlertError::Transport {
                            host: host.clone(),
                            reason: "username and password_env must be given together".to_owned(),
                        });
                    }
                }
                Ok(Mailer { inner: MailerInner::Smtp(builder.build()) })
            }
        }
    }

    /// One attempt to deliver `entry`.
    pub(crate) async fn send(&self, entry: &OutboxEntry) -> Outcome {
        let message = match build_message(entry) {
            Ok(m) => m,
            Err(reason) => return Outcome::Permanent(reason),
        };
        match &self.inner {
            MailerInner::Smtp(smtp) => match smtp.send(message).await {
                Ok(_) => Outcome::Sent,
                Err(e) if e.is_permanent() => Outcome::Permanent(format!("permanent: {e}")),
                Err(e) => Outcome::Retryable(format!("retryable: {}", error_chain(&e))),
            },
            // A file that cannot be written (disk full, permissions being fixed) may work later.
            MailerInner::File(file) => match file.send(message).await {
                Ok(_) => Outcome::Sent,
                Err(e) => Outcome::Retryable(format!("retryable: {}", error_chain(&e))),
            },
        }
    }
}

/// `e` and its sources, so that "connection refused" is visible in the stored reason.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn build_message(entry: &OutboxEntry) -> Result<Message, String> {
    let email = &entry.email;
    let parse = |a: &str| a.parse::<Mailbox>().map_err(|e| format!("permanent: invalid address {a:?}: {e}"));
    let date = SystemTime::try_from(entry.created_at).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut builder = Message::builder()
        .from(parse(&email.from)?)
        .subject(email.subject.clone())
        .message_id(Some(email.message_id.clone()))
        // The queueing time, so that a resend is byte-for-byte the same notification.
        .date(date);
    if let Some(parent) = &email.in_reply_to {
        builder = builder.in_reply_to(parent.clone()).references(parent.clone());
    }
    for to in &email.to {
        builder = builder.to(parse(to)?);
    }
    let built = match (&email.html, email.attachments.is_empty()) {
        // Both parts: mail clients show the HTML, and the plain text stays readable anywhere.
        (Some(html), true) => builder.multipart(MultiPart::alternative_plain_html(email.body.clone(), html.clone())),
        (None, true) => builder.header(ContentType::TEXT_PLAIN).body(email.body.clone()),
        // With files: multipart/mixed, the message first, then each file.
        (html, false) => {
            let mut mixed = match html {
                Some(html) => {
                    MultiPart::mixed().multipart(MultiPart::alternative_plain_html(email.body.clone(), html.clone()))
                }
                None => MultiPart::mixed().singlepart(SinglePart::plain(email.body.clone())),
            };
            for a in &email.attachments {
                let kind = ContentType::parse(&a.content_type)
                    .map_err(|e| format!("permanent: attachment {} has a bad type: {e}", a.file_name))?;
                mixed = mixed.singlepart(Attachment::new(a.file_name.clone()).body(a.data.clone(), kind));
            }
            builder.multipart(mixed)
        }
    };
    built.map_err(|e| format!("permanent: cannot build the email: {e}"))
}

/// What one [`deliver_due`] pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliveryReport {
    pub sent: usize,
    pub retry_scheduled: usize,
    pub failed_permanently: usize,
}

impl DeliveryReport {
    fn attempts(&self) -> usize {
        self.sent + self.retry_scheduled + self.failed_permanently
    }
}

/// Tries once every email due at `now` (at most one batch) and records each outcome.
/// `run_outbox` calls it in a loop; tests call it with an injected clock.
pub async fn deliver_due(
    outbox: &Arc<Mutex<Outbox>>,
    mailer: &Mailer,
    metrics: &AlertingMetrics,
    now: Timestamp,
) -> Result<DeliveryReport, AlertError> {
    let due = blocking(outbox, move |o| o.due(now, BATCH)).await?;
    let mut report = DeliveryReport::default();
    for entry in due {
        let outcome = mailer.send(&entry).await;
        let id = entry.id;
        match &outcome {
            Outcome::Sent => {
                tracing::info!(email = id, message_id = %entry.email.message_id, "email sent");
                metrics.sent();
                report.sent += 1;
            }
            Outcome::Retryable(reason) => {
                tracing::warn!(email = id, attempts = entry.attempts + 1, %reason, "email delivery failed, will retry");
                metrics.failed(false);
                report.retry_scheduled += 1;
            }
            Outcome::Permanent(reason) => {
                tracing::error!(email = id, %reason, "email delivery failed permanently");
                metrics.failed(true);
                report.failed_permanently += 1;
            }
        }
        let jitter: f64 = rand::random_range(0.5..=1.0);
        blocking(outbox, move |o| match outcome {
            Outcome::Sent => o.mark_sent(id, now),
            Outcome::Retryable(reason) => o.schedule_retry(id, &reason, now, jitter).map(drop),
            Outcome::Permanent(reason) => o.mark_failed(id, &reason, now),
        })
        .await?;
    }
    let pending = blocking(outbox, |o| o.pending()).await?;
    metrics.set_queued(pending);
    Ok(report)
}

/// Runs `f` on the outbox on tokio's blocking pool: SQLite must not stall the async workers.
async fn blocking<T: Send + 'static>(
    outbox: &Arc<Mutex<Outbox>>,
    f: impl FnOnce(&mut Outbox) -> Result<T, AlertError> + Send + 'static,
) -> Result<T, AlertError> {
    let outbox = Arc::clone(outbox);
    tokio::task::spawn_blocking(move || {
        let mut guard = outbox.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    })
    .await?
}

/// Delivers the outbox of the alerting database at `db` until `cancel` fires.
///
/// Emails are sent at least once; the schedule of retries lives in the database, so a
/// restart resumes where the previous run stopped.
pub async fn run_outbox(
    db: PathBuf,
    transport: Transport,
    metrics: AlertingMetrics,
    cancel: CancellationToken,
) -> Result<(), AlertError> {
    let mailer = Mailer::new(&transport)?;
    let outbox = tokio::task::spawn_blocking(move || Outbox::open(&db)).await??;
    let outbox = Arc::new(Mutex::new(outbox));
    tracing::info!("outbox delivery started");
    while !cancel.is_cancelled() {
        let pass = tokio::select! {
            () = cancel.cancelled() => break,
            pass = deliver_due(&outbox, &mailer, &metrics, Timestamp::now()) => pass,
        };
        let wait = match pass {
            // A full batch means more may be due right now.
            Ok(report) if report.attempts() >= BATCH => Duration::ZERO,
            Ok(_) => POLL,
            Err(e) => {
                tracing::error!(error = %e, "outbox pass failed");
                POLL
            }
        };
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
    tracing::info!("outbox delivery stopped");
    Ok(())
}

#[cfg(test)]
#[path = "deliver_tests.rs"]
mod tests;
