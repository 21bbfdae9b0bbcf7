//! `onepipe`: the command line front end.

use clap::Parser;

#[tokio::main]
async fn main() {
    onepipe_core::tls::install_provider();
    let cli = onepipe_cli::Cli::parse();
    match onepipe_cli::run(cli, &mut std::io::stdout()).await {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {}", onepipe_cli::error::report(&e));
            std::process::exit(1);
        }
    }
}
