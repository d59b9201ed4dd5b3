//! The `fastgate` command: parses the command line and calls the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use fastgate::config::{self, Config};

#[derive(Parser)]
#[command(
    name = "fastgate",
    version,
    about = "A FastCGI/CGI application gateway: pools of single-request app processes behind an HTTP front."
)]
struct Cli {
    /// Log line format (the filter comes from FASTGATE_LOG, e.g. "info,fastgate=debug").
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a config file (default: ./fastgate.toml if present, else the built-in quickstart).
    Serve { config: Option<PathBuf> },
    /// Validate a config file and print the resolved pools and mappings.
    Check { config: PathBuf },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command.unwrap_or(Command::Serve { config: None }) {
        Command::Serve { config } => serve(config.as_deref()),
        Command::Check { config } => check(&config),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FASTGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn serve(path: Option<&Path>) -> ExitCode {
    let loaded = match path {
        Some(path) => config::load_file(path),
        None if Path::new("fastgate.toml").exists() => {
            config::load_file(Path::new("fastgate.toml"))
        }
        None => {
            tracing::info!(
                "no fastgate.toml here: serving the built-in quickstart (examples/quickstart)"
            );
            Config::quickstart()
        }
    };
    let config = match loaded {
        Ok(config) => config,
        Err(e) => {
            eprintln!("fastgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("fastgate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fastgate::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fastgate: {}", fastgate::error::chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn check(path: &Path) -> ExitCode {
    let config = match config::load_file(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // Plugins are loaded and their `init` run: a plugin's verdict on its
    // own config is part of the check, and launchers decide the commands.
    let resolved = match fastgate::plugin::prepare(&config) {
        // What is checked and shown is each app as it will run.
        Ok(prepared) => config::Config {
            apps: prepared.apps,
            ..config
        },
        Err(problems) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            return ExitCode::FAILURE;
        }
    };
    let mut problems = config::check_commands(&resolved);
    problems.extend(config::check_mappings(&resolved, &resolved.apps));
    print!("{}", config::render_summary(&resolved));
    if problems.is_empty() {
        println!("configuration OK");
        ExitCode::SUCCESS
    } else {
        for problem in &problems {
            eprintln!("{problem}");
        }
        ExitCode::FAILURE
    }
}
