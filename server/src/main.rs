//! `accord`: the CRM server and its operator commands.

use std::io::Read;

use accord::config::{DatabaseArgs, ServeArgs};
use accord::services::users::{self, NewUser};
use accord_entities::user::Role;
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

/// glibc's malloc contends badly across the many threads of an async server (it showed as
/// ~16% of CPU in the nested-list benchmark); mimalloc does not.
/// Wrapped so that a script worker (`accord script-worker`) can cap its own memory.
#[global_allocator]
static GLOBAL: accord::sandbox::memory::CappedAllocator<mimalloc::MiMalloc> =
    accord::sandbox::memory::CappedAllocator(mimalloc::MiMalloc);

#[derive(Parser)]
#[command(name = "accord", version, about = "Accord CRM server")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    db: DatabaseArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the GraphQL API (the default).
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Load data: a small demo company, or a generated data set for benchmarks.
    Seed(SeedArgs),
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct SeedArgs {
    /// A realistic small company: users of every role, accounts, contacts, leads, deals.
    #[arg(long)]
    demo: bool,
    /// Generated data; 1.0 is about 100k accounts, 300k contacts, 1M opportunities and
    /// 5M stage transitions. Fractions scale down.
    #[arg(long, value_name = "N")]
    scale: Option<f64>,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Display name; defaults to the email's local part.
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Admin,
    SalesManager,
    Rep,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Admin => Role::Admin,
            RoleArg::SalesManager => Role::SalesManager,
            RoleArg::Rep => Role::Rep,
        }
    }
}

fn main() -> anyhow::Result<()> {
    // The script worker is the server's child: no runtime, no logging, no CLI surface.
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("script-worker") {
        let memory = args
            .next()
            .and_then(|m| m.parse().ok())
            .context("script-worker takes its memory allowance in bytes")?;
        let time_ms = args
            .next()
            .and_then(|t| t.parse().ok())
            .context("script-worker takes the wall-clock limit in milliseconds")?;
        return accord::sandbox::worker::run(memory, std::time::Duration::from_millis(time_ms));
    }
    run()
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("ACCORD_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        None => serve(&cli.db, ServeArgs::parse_from_env()).await,
        Some(Command::Serve(args)) => serve(&cli.db, *args).await,
        Some(Command::Migrate) => {
            let metrics = accord::metrics::Metrics::new();
            accord::app::open_database(&cli.db, &metrics).await?;
            println!("migrations applied");
            Ok(())
        }
        Some(Command::Schema) => {
            print!("{}", accord::graphql::schema::sdl());
            Ok(())
        }
        Some(Command::Seed(args)) => {
            let metrics = accord::metrics::Metrics::new();
            let db = accord::app::open_database(&cli.db, &metrics).await?;
            if args.demo {
                let logins = accord::seed::demo(&db).await?;
                println!(
                    "demo data loaded. Sign in with any of (password: {}):",
                    accord::seed::DEMO_PASSWORD
                );
                for (email, role) in logins {
                    println!("  {email:<32} {role}");
                }
            } else if let Some(scale) = args.scale {
                let counts = accord::seed::scale(&db, scale, true).await?;
                println!("{counts}");
            }
            Ok(())
        }
        Some(Command::User(UserCommand::Add { email, role, name })) => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("reading the password from stdin")?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            let metrics = accord::metrics::Metrics::new();
            let db = accord::app::open_database(&cli.db, &metrics).await?;
            let authz = accord::authz::Authz::load(&db).await?;
            let sandbox =
                accord::sandbox::Sandbox::new(accord::config::Limits::default().sandbox()?);
            let svc =
                accord::services::Services::new(db, authz, std::time::Duration::ZERO, sandbox);
            let display_name =
                name.unwrap_or_else(|| email.split('@').next().unwrap_or(&email).to_owned());
            let new = NewUser {
                email,
                display_name,
                role: role.into(),
                password: Some(password),
            };
            let user = users::create_user(&svc, None, new)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("created user {} ({})", user.email, user.role.as_str());
            Ok(())
        }
    }
}

trait FromEnv {
    fn parse_from_env() -> Self;
}

impl FromEnv for ServeArgs {
    /// `accord` with no subcommand serves with settings from the environment.
    fn parse_from_env() -> Self {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: ServeArgs,
        }
        Wrapper::parse_from(["accord"]).args
    }
}

async fn serve(db: &DatabaseArgs, args: ServeArgs) -> anyhow::Result<()> {
    let server = accord::app::start(db, args.limits, args.listen).await?;
    let backend = if db.url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "accord listening on http://{} ({backend}); GraphiQL at /graphiql",
        server.addr
    );
    tracing::info!(addr = %server.addr, backend, "serving");
    server.task.await??;
    Ok(())
}
