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
    /// Print a fastgate.toml equivalent to an IIS site's FastCGI setup (web.config, and
    /// applicationHost.config for its <fastCgi> section); unmapped settings become comments.
    ImportIis {
        web_config: PathBuf,
        application_host_config: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    fastgate::logging::init(match cli.log_format {
        LogFormat::Text => fastgate::logging::Format::Text,
        LogFormat::Json => fastgate::logging::Format::Json,
    });
    match cli.command.unwrap_or(Command::Serve { config: None }) {
        Command::Serve { config } => serve(config.as_deref()),
        Command::Check { config } => check(&config),
        Command::ImportIis {
            web_config,
            application_host_config,
        } => import_iis(&web_config, application_host_config.as_deref()),
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
        .worker_threads(config.server.worker_threads())
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
    let prepared = match fastgate::plugin::prepare(&config) {
        Ok(prepared) => prepared,
        Err(problems) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            return ExitCode::FAILURE;
        }
    };
    let (plugins_text, plugin_warnings) =
        fastgate::check::render_plugins(&config, &prepared.plugins);
    // What is checked and shown is each app as it will run.
    let resolved = config::Config {
        apps: prepared.apps,
        ..config
    };
    let mut problems = config::check_commands(&resolved);
    let runtime_dir = fastgate::check::planned_runtime_dir(&resolved);
    if let Err(e) = fastgate::check::socket_paths(&resolved, &resolved.apps, &runtime_dir) {
        problems.push(e);
    }
    problems.extend(config::check_mappings(&resolved, &resolved.apps));
    problems.extend(config::check_access(&resolved, &resolved.apps));
    print!("{}", config::render_summary(&resolved));
    print!("{}", fastgate::check::render_connections(&resolved));
    print!(
        "{}",
        fastgate::check::render_runtime(&resolved, &resolved.apps)
    );
    print!("{plugins_text}");
    for warning in &plugin_warnings {
        println!("\nwarning: {warning}");
    }
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

/// Exit status 2 for an unreadable or malformed file, like a usage error:
/// nothing was imported.
fn import_iis(web_config: &Path, app_host: Option<&Path>) -> ExitCode {
    match fastgate::iis_import::import(web_config, app_host) {
        Ok(toml) => {
            print!("{toml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fastgate import-iis: {e}");
            ExitCode::from(2)
        }
    }
}
