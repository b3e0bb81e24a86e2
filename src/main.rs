//! Thin entry point: parse the command line, load config, dispatch.
//!
//! Exit status: 0 success; 1 runtime failure (cannot bind, cannot open the
//! database); 2 invalid command line or configuration.

use std::process::ExitCode;

use authkey_receiver::archive;
use authkey_receiver::cli::{Cli, Command, ConfigAction};
use authkey_receiver::commands;
use authkey_receiver::config::{Settings, StorageBackend, DEFAULT_TOML};
use authkey_receiver::startup::Application;
use authkey_receiver::store::Store;
use authkey_receiver::telemetry;
use clap::Parser;

const EXIT_FAILURE: u8 = 1;
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Config {
        action: ConfigAction::PrintDefault,
    } = cli.command
    {
        print!("{DEFAULT_TOML}");
        return ExitCode::SUCCESS;
    }
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let settings = match Settings::load(cli.config.as_deref(), env) {
        Ok(s) => s,
        Err(e) => return fail(EXIT_CONFIG, e),
    };
    match cli.command {
        Command::Config { .. } => {
            let storage = match settings.storage.backend {
                StorageBackend::Sqlite => "SQLite",
                StorageBackend::Postgres => "PostgreSQL",
            };
            println!(
                "config ok: listen {}, {} client(s), storage {storage}, data in {}",
                settings.server.listen,
                settings.clients.len(),
                settings.storage.data_dir.display()
            );
            ExitCode::SUCCESS
        }
        Command::Migrate => match Store::migrate(&settings.storage) {
            Ok((before, after)) => {
                println!("schema version {before} -> {after}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(EXIT_FAILURE, e),
        },
        Command::Serve => serve(settings),
        Command::Archive(args) => {
            telemetry::init(&settings.log);
            archive::command::archive(&settings, &args)
        }
        Command::VerifyArchive { dir } => archive::command::verify(&settings, dir.as_deref()),
        Command::Token { action } => commands::token(action, &settings),
        Command::Export(args) => commands::export(args, &settings),
        Command::Audit { since } => commands::audit(since.as_deref(), &settings),
    }
}

fn serve(settings: Settings) -> ExitCode {
    telemetry::init(&settings.log);
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings)?;
        tracing::info!("listening on {}://{}", app.scheme(), app.addr());
        app.run_until_stopped().await?;
        tracing::info!("stopped cleanly");
        Ok::<_, anyhow::Error>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(EXIT_FAILURE, e),
    }
}

fn fail(code: u8, e: impl std::fmt::Display) -> ExitCode {
    eprintln!("authkey-receiver: {e}");
    ExitCode::from(code)
}
