//! The command line: `dev`, `serve`, `migrate`, `tenant`, `sim`, `signature check`.

use crate::config::Role;
use crate::{server, signature_check, sim_server};
use clap::{Args, Parser, Subcommand};
use std::process::ExitCode;

/// Prints a line, ignoring a closed stdout (a reader that went away must not stop the server).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[derive(Parser, Debug)]
#[command(
    name = "switchboard",
    version,
    about = "One self-hosted server between applications and Twilio"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run everything on embedded defaults: server, Twilio twin and dashboard, SQLite in the data dir.
    Dev(DevArgs),
    /// Run in production, configured from the environment (DATABASE_URL, SWITCHBOARD_PUBLIC_URL, …).
    Serve(ServeArgs),
    /// Apply database migrations (DATABASE_URL) and exit.
    Migrate,
    /// Manage tenants: of `dev`'s data directory, or of the environment's database
    /// (DATABASE_URL, SWITCHBOARD_MASTER_KEY, …).
    Tenant {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage call flows: of `dev`'s data directory, or of the environment's database.
    Flow {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: FlowCommand,
    },
    /// Run the Twilio twin alone: a Twilio-compatible API with signed webhooks and handsets.
    Sim(SimArgs),
    /// Twilio request signatures.
    Signature {
        #[command(subcommand)]
        command: SignatureCommand,
    },
}

#[derive(Args, Debug)]
pub struct SimArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8090, env = "SWITCHBOARD_SIM_PORT")]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The account SID to serve (random when absent).
    #[arg(long, env = "TWILIO_ACCOUNT_SID")]
    pub account_sid: Option<String>,
    /// The account's auth token (random when absent).
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// A number the account owns (repeatable).
    #[arg(long = "number", value_name = "E164")]
    pub numbers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Port to listen on.
    #[arg(long, default_value_t = 8080, env = "PORT")]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Where the database, media and keys are kept.
    #[arg(long, default_value = ".switchboard")]
    pub data_dir: std::path::PathBuf,
    /// Fix the dev tenant's API key (so scripts can use it).
    #[arg(long, env = "SWITCHBOARD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[arg(long, default_value_t = 8080, env = "PORT")]
    pub port: u16,
    #[arg(long, default_value = "0.0.0.0", env = "SWITCHBOARD_HOST")]
    pub host: String,
    /// Which loops this process runs: the HTTP API and webhooks, the workers, or both.
    #[arg(long, value_enum, default_value = "all", env = "SWITCHBOARD_ROLE")]
    pub role: Role,
}

/// Which installation an administrative command acts on.
#[derive(Args, Debug)]
pub struct Target {
    /// `dev`'s data directory. Without it: the environment (DATABASE_URL, …) when DATABASE_URL
    /// is set, else `.switchboard` when `dev` has run here.
    #[arg(long, global = true)]
    pub data_dir: Option<std::path::PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// List tenants: id, name, Twilio account and how many numbers.
    List,
    /// Make a new API key (shown this once) and revoke the tenant's earlier ones.
    RotateKey {
        /// Tenant id or name.
        tenant: String,
        /// Keep the earlier keys working (revoke them later with another rotation).
        #[arg(long)]
        keep_old: bool,
    },
    /// Create a tenant and print its API key (shown this once).
    Create {
        name: String,
        /// Default region for numbers written without a country code.
        #[arg(long, default_value = "US")]
        region: String,
    },
    /// Attach a tenant's Twilio credentials (the auth token is encrypted at rest).
    Twilio {
        /// Tenant id or name.
        tenant_id: String,
        #[arg(long, env = "TWILIO_ACCOUNT_SID")]
        account_sid: String,
        #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
        auth_token: String,
    },
    /// Attach one of the tenant's Twilio numbers and point its webhooks here.
    AddNumber {
        /// Tenant id or name.
        tenant_id: String,
        phone_number: String,
        #[arg(long)]
        segments_per_second: Option<f64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum FlowCommand {
    /// Load a call flow from a JSON file (created, or replaced if one has its name), validated
    /// as the API does; optionally attach it to one of the tenant's numbers.
    /// Templates the flow texts are loaded first from `NAME.templates.json` beside the file.
    Load {
        file: std::path::PathBuf,
        /// Tenant id or name.
        #[arg(long)]
        tenant: String,
        /// Answer calls to this number with the flow.
        #[arg(long)]
        number: Option<String>,
    },
    /// List a tenant's flows.
    List {
        /// Tenant id or name.
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SignatureCommand {
    /// Check an X-Twilio-Signature: exit 0 and `valid`, or exit 1 and `invalid`, with what was signed.
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The full URL Twilio requested, exactly as configured in Twilio.
    #[arg(long)]
    pub url: String,
    /// The account's auth token.
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The X-Twilio-Signature header value.
    #[arg(long)]
    pub signature: String,
    /// A form parameter Twilio posted, KEY=VALUE (repeatable).
    #[arg(short = 'd', value_name = "KEY=VALUE", value_parser = signature_check::parse_param)]
    pub data: Vec<(String, String)>,
    /// A file holding a raw (JSON) body, checked with the URL's bodySHA256.
    #[arg(long, value_name = "FILE", conflicts_with = "data")]
    pub body: Option<std::path::PathBuf>,
}

pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Dev(args) => run_dev(args).await,
        Command::Serve(args) => run_serve(args).await,
        Command::Migrate => run_migrate().await,
        Command::Tenant { target, command } => run_tenant(target, command).await,
        Command::Flow { target, command } => run_flow(target, command).await,
        Command::Sim(args) => run_sim(args).await,
        Command::Signature {
            command: SignatureCommand::Check(args),
        } => run_check(args),
    }
}

fn init_tracing() {
    crate::telemetry::init_tracing();
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn run_sim(args: SimArgs) -> ExitCode {
    init_tracing();
    let listener = match tokio::net::TcpListener::bind((args.host.as_str(), args.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}:{}: {e}", args.host, args.port);
            return ExitCode::from(2);
        }
    };
    let numbers = if args.numbers.is_empty() {
        vec!["+14155550100".to_string()]
    } else {
        args.numbers
    };
    let result = sim_server::run(
        listener,
        args.account_sid,
        args.auth_token,
        &numbers,
        |seed| {
            out!("Twilio twin listening on {}", seed.base_url);
            out!("  account SID:  {}", seed.account_sid);
            out!("  auth token:   {}", seed.auth_token);
            out!("  numbers:      {}", seed.numbers.join(", "));
            out!("  Twilio base:  {}/{{product}}   (api.twilio.com -> {}/api)", seed.base_url, seed.base_url);
            out!("  a handset texts a number:  curl -X POST {}/control/sms -H 'Content-Type: application/json' -d '{{\"from\":\"+14155550199\",\"to\":\"{}\",\"body\":\"hello\"}}'", seed.base_url, seed.numbers[0]);
        },
        shutdown_signal(),
    )
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_check(args: CheckArgs) -> ExitCode {
    let body = match &args.body {
        Some(path) => match std::fs::read(path) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("error: cannot read --body {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let (valid, report) = signature_check::check(&signature_check::Input {
        url: args.url,
        token: args.token,
        signature: args.signature,
        params: args.data,
        body,
    });
    print!("{report}");
    if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

async fn bind(host: &str, port: u16) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind((host, port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))
}

async fn run_dev(args: DevArgs) -> ExitCode {
    init_tracing();
    let listener = match bind(&args.host, args.port).await {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let result = server::dev(
        listener,
        args.data_dir,
        args.api_key,
        |info| {
            let to = "+14155550199";
            out!();
            out!("Switchboard is running at {}", info.url);
            out!("  dashboard:     {}/#key={}", info.url, info.api_key);
            out!("  API key:       {}", info.api_key);
            out!("  your numbers:  {}", info.numbers.join(", "));
            out!("  Twilio twin:   {}/sim", info.url);
            out!("    account SID: {}", info.twilio_account_sid);
            out!("    auth token:  {}", info.twilio_auth_token);
            out!("  data:          {}", info.data_dir.display());
            out!();
            out!("Send a text:");
            out!("  curl -s {}/v1/messages -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' -d '{{\"to\":\"{to}\",\"body\":\"Hello from Switchboard\"}}'", info.url, info.api_key);
            out!("See it delivered:");
            out!("  curl -s {}/v1/messages -H 'Authorization: Bearer {}'", info.url, info.api_key);
            out!("Text your number from a simulated phone:");
            out!("  curl -s {}/sim/control/sms -H 'Content-Type: application/json' -d '{{\"from\":\"{to}\",\"to\":\"{}\",\"body\":\"Hi!\"}}'", info.url, info.numbers[0]);
        },
        shutdown_signal(),
    )
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

async fn run_serve(args: ServeArgs) -> ExitCode {
    init_tracing();
    let (config, tenant) = match server::config_from_env(args.role) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let listener = if args.role.serves_http() {
        match bind(&args.host, args.port).await {
            Ok(l) => Some(l),
            Err(e) => return fail(e),
        }
    } else {
        None
    };
    if let Some(l) = &listener {
        if let Ok(a) = l.local_addr() {
            tracing::info!(address = %a, public_url = %config.public_url, "serving");
        }
    }
    match server::serve(listener, config, tenant, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn database_url() -> Result<String, String> {
    std::env::var("DATABASE_URL")
        .map_err(|_| "DATABASE_URL is required (sqlite:PATH or postgres://…)".to_string())
}

async fn run_migrate() -> ExitCode {
    init_tracing();
    let url = match database_url() {
        Ok(u) => u,
        Err(e) => return fail(e),
    };
    match crate::db::Db::connect(&url).await {
        Ok(db) => match db.migrate().await {
            Ok(()) => {
                out!("migrated");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Err(e) => fail(e),
    }
}

/// The application an administrative command acts on, without serving anything.
async fn admin_app(target: Target) -> Result<crate::App, String> {
    server::build(server::admin_config(target.data_dir)?).await
}

async fn run_tenant(target: Target, cmd: TenantCommand) -> ExitCode {
    let app = match admin_app(target).await {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let db = app.db();
    use crate::tenants::store as tenants;
    let find = async |t: &str| {
        tenants::find_tenant(db, t)
            .await
            .map_err(|e| e.to_string())?
            .ok_or(format!("no tenant with the id or name {t:?}"))
    };
    let result: Result<(), String> = async {
        match cmd {
            TenantCommand::List => {
                for (t, numbers) in tenants::list_tenants(db).await.map_err(|e| e.to_string())? {
                    out!(
                        "{}  {}  {}  {} number(s)",
                        t.id,
                        t.name,
                        t.account_sid.as_deref().unwrap_or("(no Twilio account)"),
                        numbers
                    );
                }
            }
            TenantCommand::RotateKey { tenant, keep_old } => {
                let t = find(&tenant).await?;
                let key = tenants::rotate_api_key(db, &t.id, keep_old)
                    .await
                    .map_err(|e| e.to_string())?;
                out!("API key: {key}   (shown once: keep it now)");
                if !keep_old {
                    out!("earlier keys of {} are revoked", t.name);
                }
            }
            TenantCommand::Create { name, region } => {
                if region.parse::<phonenumber::country::Id>().is_err() {
                    return Err(format!(
                        "--region {region:?} is not a country code like US or GB"
                    ));
                }
                let (t, key) = tenants::create_tenant(db, &name, &region.to_uppercase(), None)
                    .await
                    .map_err(|e| e.to_string())?;
                out!("tenant:  {}", t.id);
                out!("API key: {key}   (shown once: keep it now)");
            }
            TenantCommand::Twilio {
                tenant_id,
                account_sid,
                auth_token,
            } => {
                let tenant_id = find(&tenant_id).await?.id;
                if !twilio::sid::is_sid(&account_sid, "AC") {
                    return Err("--account-sid is AC followed by 32 hex digits".into());
                }
                tenants::set_twilio(
                    db,
                    &app.config().master_key,
                    &tenant_id,
                    &account_sid,
                    &auth_token,
                )
                .await
                .map_err(|e| e.to_string())?;
                out!("Twilio account {account_sid} attached to {tenant_id}");
            }
            TenantCommand::AddNumber {
                tenant_id,
                phone_number,
                segments_per_second,
            } => {
                let t = find(&tenant_id).await?;
                let phone = crate::phone::E164::parse(&phone_number, &t.default_region)
                    .map_err(|e| e.to_string())?;
                let client = app.twilio(&t.id).await.map_err(|e| e.message)?;
                let sid =
                    crate::numbers::setup::point_webhooks(&app, &client, phone.as_str()).await?;
                let rate = segments_per_second.unwrap_or(app.config().default_segments_per_second);
                let n =
                    crate::numbers::store::add_number(db, &t.id, phone.as_str(), rate, Some(&sid))
                        .await
                        .map_err(|e| e.to_string())?;
                out!(
                    "number {} ({}) attached; its webhooks point at {}",
                    n.id,
                    n.phone_number,
                    app.config().public_url
                );
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

async fn run_flow(target: Target, cmd: FlowCommand) -> ExitCode {
    let app = match admin_app(target).await {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let result: Result<(), String> = async {
        match cmd {
            FlowCommand::Load {
                file,
                tenant,
                number,
            } => {
                let (id, templates) =
                    crate::voice::flows::load_file(&app, &tenant, &file, number.as_deref()).await?;
                for t in templates {
                    out!("template {t:?} loaded");
                }
                out!("flow {id} loaded from {}", file.display());
            }
            FlowCommand::List { tenant } => {
                let t = crate::tenants::store::find_tenant(app.db(), &tenant)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or(format!("no tenant with the id or name {tenant:?}"))?;
                let flows = crate::voice::flows::list_all(app.db(), &t.id)
                    .await
                    .map_err(|e| e.to_string())?;
                for f in flows {
                    out!("{}  {}  {} step(s)", f.id, f.flow.name, f.flow.steps.len());
                }
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}
