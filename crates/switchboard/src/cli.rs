//! The command line: `switchboard sim`, `switchboard signature check`.

use crate::{signature_check, sim_server};
use clap::{Args, Parser, Subcommand};
use std::process::ExitCode;

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
        Command::Sim(args) => run_sim(args).await,
        Command::Signature {
            command: SignatureCommand::Check(args),
        } => run_check(args),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
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
            println!("Twilio twin listening on {}", seed.base_url);
            println!("  account SID:  {}", seed.account_sid);
            println!("  auth token:   {}", seed.auth_token);
            println!("  numbers:      {}", seed.numbers.join(", "));
            println!("  Twilio base:  {}/{{product}}   (api.twilio.com -> {}/api)", seed.base_url, seed.base_url);
            println!("  a handset texts a number:  curl -X POST {}/control/sms -H 'Content-Type: application/json' -d '{{\"from\":\"+14155550199\",\"to\":\"{}\",\"body\":\"hello\"}}'", seed.base_url, seed.numbers[0]);
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
