//! Typed settings, from CLI flags or `ACCORD_*` / `DATABASE_URL` environment variables.

use std::net::SocketAddr;

use clap::Args;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://accord.db?mode=rwc";

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Database URL: `sqlite://FILE?mode=rwc` (default `./accord.db`) or `postgres://...`.
    #[arg(long = "database-url", env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true)]
    pub url: String,
    /// Connection pool size.
    #[arg(long, env = "ACCORD_DB_POOL_SIZE", default_value_t = 16, global = true)]
    pub pool_size: u32,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, env = "ACCORD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub limits: Limits,
}

/// Request limits. Defaults suit interactive clients and dashboards.
#[derive(Debug, Clone, Args)]
pub struct Limits {
    /// Largest accepted HTTP request body, in bytes.
    #[arg(long, env = "ACCORD_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,
    /// Most operations accepted in one batched request.
    #[arg(long, env = "ACCORD_MAX_BATCH", default_value_t = 10)]
    pub max_batch: usize,
    /// Deepest accepted query nesting.
    #[arg(long, env = "ACCORD_MAX_DEPTH", default_value_t = 12)]
    pub max_depth: usize,
    /// Largest accepted query complexity (fields, multiplied by page sizes).
    #[arg(long, env = "ACCORD_MAX_COMPLEXITY", default_value_t = 20_000)]
    pub max_complexity: usize,
    /// Lifetime of a login session token, in hours.
    #[arg(long, env = "ACCORD_SESSION_HOURS", default_value_t = 24 * 7)]
    pub session_hours: i64,
    /// How long a resolved token is trusted without a database lookup. A revocation made
    /// through another instance takes up to this long to reach this one; 0 disables.
    #[arg(long, env = "ACCORD_AUTH_CACHE_SECONDS", default_value_t = 5)]
    pub auth_cache_seconds: u64,
    /// How often this instance checks whether another instance changed the territory
    /// policy, in milliseconds. Its own changes apply at once.
    #[arg(long, env = "ACCORD_POLICY_POLL_MS", default_value_t = 1000)]
    pub policy_poll_ms: u64,
    /// Stage-script worker processes per lane (stage moves; authoring tools) running at
    /// once, each taking at most one core. Default: one per core, at least 2, at most 8.
    #[arg(long, env = "ACCORD_SCRIPT_WORKERS", default_value_t = default_script_workers())]
    pub script_workers: usize,
    /// Wall-clock limit of one stage-script evaluation, in milliseconds.
    #[arg(long, env = "ACCORD_SCRIPT_TIME_MS", default_value_t = 250)]
    pub script_time_ms: u64,
    /// Memory limit of one stage-script evaluation, in MiB.
    #[arg(long, env = "ACCORD_SCRIPT_MEMORY_MIB", default_value_t = 64)]
    pub script_memory_mib: usize,
    /// The `accord` binary that runs script workers; defaults to this executable.
    #[arg(long, env = "ACCORD_SCRIPT_WORKER_PROGRAM")]
    pub script_worker_program: Option<std::path::PathBuf>,
    /// Where clients reach this server (`https://crm.example.com`, with a path if a proxy
    /// serves it under one), for the absolute URLs Accord hands out: calendar feeds.
    /// Unset: those come as paths only.
    #[arg(long, env = "ACCORD_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,
    #[command(flatten)]
    pub delivery: Delivery,
}

/// How reminders are claimed and delivered (see `scheduler/`).
#[derive(Debug, Clone, Args)]
pub struct Delivery {
    /// Run the reminder scheduler in this instance. Turn it off on instances that should
    /// only serve requests; the others deliver.
    #[arg(long = "scheduler", env = "ACCORD_SCHEDULER", default_value_t = true, action = clap::ArgAction::Set)]
    pub scheduler: bool,
    /// How long a claimed reminder stays with one instance before another may deliver
    /// it again (the instance died, or hung), in milliseconds.
    #[arg(long, env = "ACCORD_REMINDER_LEASE_MS", default_value_t = 60_000)]
    pub reminder_lease_ms: u64,
    /// Deliveries tried before a reminder ends as dead (retryable through GraphQL).
    #[arg(long, env = "ACCORD_REMINDER_MAX_ATTEMPTS", default_value_t = 8)]
    pub reminder_max_attempts: i32,
    /// Wait before the first retry, in milliseconds; it doubles per attempt, up to an hour.
    #[arg(long, env = "ACCORD_REMINDER_BACKOFF_MS", default_value_t = 30_000)]
    pub reminder_backoff_ms: u64,
    /// Reminders delivered at once by this instance. Webhook deliveries spend their time
    /// waiting on the network, so this is sized for a burst against receivers a few
    /// tens of milliseconds away; email has its own, smaller limit.
    #[arg(long, env = "ACCORD_DELIVERY_CONCURRENCY", default_value_t = 256)]
    pub delivery_concurrency: usize,
    /// Longest the scheduler sleeps when nothing is due, in milliseconds. New reminders
    /// wake it at once (on PostgreSQL across instances too); this only bounds how long a
    /// reminder written behind Accord's back waits to be noticed.
    #[arg(long, env = "ACCORD_SCHEDULER_IDLE_MS", default_value_t = 30_000)]
    pub scheduler_idle_ms: u64,
    /// Time allowed for one webhook request, in milliseconds.
    #[arg(long, env = "ACCORD_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,
    /// Networks webhooks may reach even though they are loopback, private, link-local or
    /// otherwise internal (comma-separated CIDRs, e.g. `10.1.0.0/16,127.0.0.1/32`).
    /// Everything internal is refused otherwise.
    #[arg(long, env = "ACCORD_WEBHOOK_ALLOW", value_delimiter = ',')]
    pub webhook_allow: Vec<ipnet::IpNet>,
    /// SMTP server for reminder emails: `smtp://host:port` (STARTTLS if offered),
    /// `smtps://host:465`, with `user:password@` if it needs a login. Unset: no email.
    #[arg(long, env = "ACCORD_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// Sender of reminder emails.
    #[arg(
        long,
        env = "ACCORD_SMTP_FROM",
        default_value = "Accord <reminders@accord.invalid>"
    )]
    pub smtp_from: String,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            scheduler: true,
            reminder_lease_ms: 60_000,
            reminder_max_attempts: 8,
            reminder_backoff_ms: 30_000,
            delivery_concurrency: 256,
            scheduler_idle_ms: 30_000,
            webhook_timeout_ms: 10_000,
            webhook_allow: Vec::new(),
            smtp_url: None,
            smtp_from: "Accord <reminders@accord.invalid>".into(),
        }
    }
}

/// An http(s) URL with a host and nothing after its path.
fn parse_public_url(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("use http(s)://host[:port][/path]".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("leave out any query or fragment".into());
    }
    Ok(url.into())
}

impl Limits {
    /// The absolute URL of a server path (`/calendar/...`), if the public address is known.
    pub fn public_url_of(&self, path: &str) -> Option<String> {
        self.public_url.as_ref().map(|base| {
            format!(
                "{}/{}",
                base.trim_end_matches('/'),
                path.trim_start_matches('/')
            )
        })
    }

    pub fn sandbox(&self) -> anyhow::Result<crate::sandbox::SandboxConfig> {
        let program = match &self.script_worker_program {
            Some(program) => program.clone(),
            None => std::env::current_exe()?,
        };
        Ok(crate::sandbox::SandboxConfig {
            program,
            workers: self.script_workers.max(1),
            time_limit: std::time::Duration::from_millis(self.script_time_ms.max(1)),
            memory_limit_bytes: self.script_memory_mib.max(1) * 1024 * 1024,
        })
    }
}

/// Script workers per lane unless configured: one per core, at least 2, at most 8.
///
/// A move waits for a worker of its lane. Workers run at a lower CPU priority, so on a
/// busy machine each exchange also waits for the worker to be scheduled; with a single
/// worker that wait serialized every move (the stage-move benchmark on PostgreSQL at 8
/// clients gained 10 to 25% from a second worker). More than one per core buys nothing.
/// There are two lanes, so up to twice this many worker processes exist, each holding
/// at most the script memory limit while it evaluates; the count per lane bounds the
/// CPU that lane's scripts can take at once.
pub fn default_script_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, usize::from)
        .clamp(2, 8)
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 256 * 1024,
            max_batch: 10,
            max_depth: 12,
            max_complexity: 20_000,
            session_hours: 24 * 7,
            auth_cache_seconds: 5,
            policy_poll_ms: 1000,
            script_workers: default_script_workers(),
            script_time_ms: 250,
            script_memory_mib: 64,
            script_worker_program: None,
            public_url: None,
            delivery: Delivery::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_public_url_must_be_a_plain_http_address() {
        assert!(parse_public_url("https://crm.example.com").is_ok());
        assert!(parse_public_url("http://10.0.0.5:8080/accord/").is_ok());
        for bad in [
            "crm.example.com",
            "ftp://crm.example.com",
            "https://crm.example.com/?a=1",
            "https://crm.example.com/#x",
        ] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
        let limits = Limits {
            public_url: Some(parse_public_url("https://crm.example.com/accord/").unwrap()),
            ..Limits::default()
        };
        assert_eq!(
            limits.public_url_of("/calendar/cal_x.ics").as_deref(),
            Some("https://crm.example.com/accord/calendar/cal_x.ics")
        );
        assert_eq!(Limits::default().public_url_of("/calendar/cal_x.ics"), None);
    }
}
