use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = switchboard::cli::Cli::parse();
    switchboard::cli::run(cli).await
}
