//! The `ftp-actor` binary: `serve`, `shell`, `user`, `demo`.

use std::process::ExitCode;

use clap::Parser;
use ftp_actor::cli::{Cli, Command, demo, serve, shell, user};

fn main() -> ExitCode {
    // Before any thread starts; see `ftp_actor::tuning::heap`.
    ftp_actor::tuning::heap::keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Shell(args) => return ExitCode::from(shell::run(args)),
        Command::Demo(args) => return ExitCode::from(demo::run(args)),
        Command::Serve(args) => serve::run(args),
        Command::User(args) => user::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", described(&error));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes, each said once. The library's errors already end with their
/// source's text (`cannot listen on ADDR: Address already in use`), which anyhow's chain would
/// then repeat.
fn described(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}
