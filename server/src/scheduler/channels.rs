//! The three ways a reminder reaches its recipient, each carrying the reminder's
//! idempotency key so a receiver can drop the duplicate a crash may cause:
//! - `in_app`: the recipient's live GraphQL subscriptions, on every instance;
//! - `webhook`: each active webhook of the recipient and of their teams (territories),
//!   signed with HMAC-SHA256 over the timestamp and the body;
//! - `email`: to the recipient's address, through the configured SMTP server.
//!
//! A channel the recipient has nothing for (no webhook, no SMTP server configured) counts
//! as delivered: there is nothing to retry.

use std::collections::BTreeSet;
use std::sync::Arc;

use accord_entities::{reminder, user, webhook};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use lettre::message::Mailbox;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use reqwest::Url;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde::Serialize;
use sha2::Sha256;

use super::egress::Egress;
use crate::config::Delivery;
use crate::events::{EventBus, FIRED_CHANNEL, ReminderFired};
use crate::graphql::ids::{NodeKind, encode};

pub const IN_APP: &str = "in_app";
pub const WEBHOOK: &str = "webhook";
pub const EMAIL: &str = "email";
pub const ALL: [&str; 3] = [IN_APP, WEBHOOK, EMAIL];
/// Most emails in flight per instance (Postfix, for one, accepts 50 connections per
/// client by default).
const SMTP_CONNECTIONS: usize = 16;

/// Everything a reminder's delivery needs to know about its recipient.
pub struct Recipient {
    pub user: user::Model,
    pub webhooks: Vec<Hook>,
}

/// A webhook with its URL checked once for all the reminders of a claim.
pub struct Hook {
    pub model: webhook::Model,
    /// Where to post, or why it may not be posted to: the allow-list may have changed
    /// since the URL was registered.
    target: Result<Url, String>,
}

impl Hook {
    pub fn new(model: webhook::Model, egress: &Egress) -> Self {
        let target = egress.check_literal(&model.url);
        Hook { model, target }
    }
}

/// The JSON a webhook receives (keys in alphabetical order).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookBody<'a> {
    attempt: i32,
    due_at: DateTime<Utc>,
    fired_at: DateTime<Utc>,
    idempotency_key: &'a str,
    message: &'a str,
    opportunity_id: Option<String>,
    recipient_email: &'a str,
    recipient_id: String,
    reminder_id: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// A delivery that did not reach everything it should have.
pub struct Missed {
    pub error: String,
    /// What did get it (channel names and `webhook:ID`), for the retry to skip.
    pub delivered: String,
}

pub struct Deliverer {
    db: DatabaseConnection,
    bus: EventBus,
    egress: Arc<Egress>,
    http: reqwest::Client,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    /// Emails being sent at once: mail servers limit connections per client well
    /// below the delivery slots webhooks can use.
    smtp_slots: tokio::sync::Semaphore,
    from: Option<Mailbox>,
    /// Names this instance in webhook headers, so receivers (and tests) can tell who sent.
    instance: String,
}

impl Deliverer {
    pub fn new(
        db: DatabaseConnection,
        bus: EventBus,
        config: &Delivery,
        instance: String,
    ) -> anyhow::Result<Self> {
        let egress = Arc::new(Egress::new(config.webhook_allow.clone()));
        let timeout = std::time::Duration::from_millis(config.webhook_timeout_ms.max(1));
        let http = egress.client(timeout)?;
        let smtp = match &config.smtp_url {
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| anyhow::anyhow!("ACCORD_SMTP_URL: {e}"))?
                    .timeout(Some(timeout))
                    .build(),
            ),
            None => None,
        };
        let from = match &config.smtp_url {
            Some(_) => Some(
                config
                    .smtp_from
                    .parse::<Mailbox>()
                    .map_err(|e| anyhow::anyhow!("ACCORD_SMTP_FROM: {e}"))?,
            ),
            None => None,
        };
        Ok(Deliverer {
            db,
            bus,
            egress,
            http,
            smtp,
            smtp_slots: tokio::sync::Semaphore::new(SMTP_CONNECTIONS),
            from,
            instance,
        })
    }

    /// The guard webhook URLs are checked against.
    pub fn egress(&self) -> &Arc<Egress> {
        &self.egress
    }

    /// Delivers `r` on each of its channels that does not have it yet.
    pub async fn deliver(&self, r: &reminder::Model, to: &Recipient) -> Result<(), Missed> {
        let mut done: BTreeSet<String> = split(&r.delivered_channels).collect();
        let mut errors: Vec<String> = Vec::new();
        let fired_at = Utc::now();
        for channel in split(&r.channels) {
            if done.contains(&channel) {
                continue;
            }
            let outcome = match channel.as_str() {
                IN_APP => self.in_app(r, fired_at).await,
                WEBHOOK => self.webhooks(r, to, fired_at, &mut done).await,
                EMAIL => self.email(r, to).await,
                other => Err(format!("unknown channel `{other}`")),
            };
            match outcome {
                Ok(()) => {
                    done.insert(channel);
                }
                Err(e) => errors.push(format!("{channel}: {e}")),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Missed {
                error: errors.join("; "),
                delivered: done.into_iter().collect::<Vec<_>>().join(","),
            })
        }
    }

    async fn in_app(&self, r: &reminder::Model, fired_at: DateTime<Utc>) -> Result<(), String> {
        let fired = ReminderFired {
            reminder_id: r.id,
            recipient_id: r.recipient_id,
            opportunity_id: r.opportunity_id,
            message: r.message.clone(),
            due_at: r.due_at,
            idempotency_key: r.idempotency_key.clone(),
            fired_at,
        };
        match self.db.get_database_backend() {
            // Every instance's listener (this one's too) hands it to its subscribers.
            DbBackend::Postgres => {
                let payload = serde_json::to_string(&fired).map_err(|e| e.to_string())?;
                self.db
                    .execute_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        "SELECT pg_notify($1, $2)",
                        [FIRED_CHANNEL.into(), payload.into()],
                    ))
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %e, "announcing a reminder failed");
                        "could not announce to live sessions".to_owned()
                    })?;
            }
            _ => self.bus.reminder_fired(fired),
        }
        Ok(())
    }

    async fn webhooks(
        &self,
        r: &reminder::Model,
        to: &Recipient,
        fired_at: DateTime<Utc>,
        done: &mut BTreeSet<String>,
    ) -> Result<(), String> {
        let body = serde_json::to_string(&WebhookBody {
            attempt: r.attempts,
            due_at: r.due_at,
            fired_at,
            idempotency_key: &r.idempotency_key,
            message: &r.message,
            opportunity_id: r
                .opportunity_id
                .map(|id| encode(NodeKind::Opportunity, id).to_string()),
            recipient_email: &to.user.email,
            recipient_id: encode(NodeKind::User, r.recipient_id).to_string(),
            reminder_id: encode(NodeKind::Reminder, r.id).to_string(),
            kind: "reminder",
        })
        .map_err(|e| e.to_string())?;
        let mut errors = Vec::new();
        for hook in to.webhooks.iter().filter(|h| h.model.active) {
            let key = format!("{WEBHOOK}:{}", hook.model.id);
            if done.contains(&key) {
                continue;
            }
            match self.post(hook, &r.idempotency_key, &body).await {
                Ok(()) => {
                    done.insert(key);
                }
                Err(e) => errors.push(format!("webhook {}: {e}", hook.model.id)),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join(", "))
        }
    }

    async fn post(&self, hook: &Hook, key: &str, body: &str) -> Result<(), String> {
        let url = hook.target.clone()?;
        let timestamp = Utc::now().timestamp().to_string();
        let signature = sign(&hook.model.secret, &timestamp, body);
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Accord-Idempotency-Key", key)
            .header("X-Accord-Timestamp", &timestamp)
            .header("X-Accord-Signature", format!("v1={signature}"))
            .header("X-Accord-Instance", &self.instance)
            .body(body.to_owned())
            .send()
            .await
            .map_err(describe_http_error)?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("answered HTTP {}", status.as_u16()))
        }
    }

    async fn email(&self, r: &reminder::Model, to: &Recipient) -> Result<(), String> {
        let (Some(smtp), Some(from)) = (&self.smtp, &self.from) else {
            return Ok(());
        };
        let recipient: Mailbox = match format!("{} <{}>", to.user.display_name, to.user.email)
            .parse()
            .or_else(|_| to.user.email.parse())
        {
            Ok(m) => m,
            Err(_) => return Err(format!("`{}` is not a deliverable address", to.user.email)),
        };
        let subject: String = r.message.chars().take(78).collect();
        let text = format!(
            "{}\n\nDue {}.\n\nReminder key: {}\n",
            r.message,
            r.due_at.format("%Y-%m-%d %H:%M UTC"),
            r.idempotency_key
        );
        let message = Message::builder()
            .from(from.clone())
            .to(recipient)
            .subject(format!("Reminder: {subject}"))
            // Mail clients and servers drop a second message with the same Message-ID.
            .message_id(Some(format!(
                "<{}@accord>",
                message_id_part(&r.idempotency_key)
            )))
            .header(IdempotencyKey(r.idempotency_key.clone()))
            .header(ContentType::TEXT_PLAIN)
            .body(text)
            .map_err(|e| format!("could not build the message: {e}"))?;
        let Ok(_slot) = self.smtp_slots.acquire().await else {
            return Err("the mail sender is shutting down".to_owned());
        };
        smtp.send(message).await.map_err(|e| {
            tracing::warn!(error = %e, "sending a reminder email failed");
            if e.is_permanent() {
                "the SMTP server refused the message".to_owned()
            } else {
                "the SMTP server could not be reached or failed".to_owned()
            }
        })?;
        Ok(())
    }
}

/// `hex(HMAC-SHA256(secret, "{timestamp}.{body}"))`, as receivers recompute it.
pub fn sign(secret: &str, timestamp: &str, body: &str) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn split(list: &str) -> impl Iterator<Item = String> + '_ {
    list.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
}

fn message_id_part(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '.'
            }
        })
        .collect()
}

fn describe_http_error(e: reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    if e.is_redirect() {
        return "redirect refused or too many redirects".into();
    }
    // The guard's refusals travel as the error's source; say what they say.
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if text.contains("internal address") || text.contains("redirect refused") {
            return text;
        }
        source = s.source();
    }
    if e.is_connect() {
        "could not connect".into()
    } else {
        "request failed".into()
    }
}

/// `X-Accord-Idempotency-Key` on reminder emails.
#[derive(Clone)]
struct IdempotencyKey(String);

impl Header for IdempotencyKey {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Accord-Idempotency-Key")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(IdempotencyKey(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_an_independent_implementation() {
        // Python: hmac.new(b'Jefe', b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
        assert_eq!(
            sign("Jefe", "1700000000", r#"{"a":1}"#),
            "fa5f6481efc59da48b19c9dc10196c9953e5651f8304b3a318b6b87d70272e0a"
        );
    }
}
