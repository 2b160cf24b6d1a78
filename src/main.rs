//! `effnet`: move EfficientNet checkpoints between TensorFlow/Keras and PyTorch, audit them
//! against the B0–B7 spec, and report their cost per stage.
//!
//! The binary only parses arguments and prints; the work happens in the `effnet-*` crates.

mod cli;
mod commands;
mod output;
mod render_html;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command};

/// Exit status for a usage or input error (0 success, 1 deviation or budget exceeded, 2 error).
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    output::set_ui(output::Ui {
        quiet: cli.quiet,
        verbose: cli.verbose,
    });
    let result = match cli.command {
        Command::Spec(args) => commands::spec::run(&args),
        Command::Inspect(args) => commands::inspect::run(&args),
        Command::Audit(args) => commands::audit::run(&args),
        Command::Convert(args) => commands::convert::run(&args),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cli::Cli::command(), "effnet", &mut out);
            output::print(&String::from_utf8_lossy(&out)).map(|()| ExitCode::SUCCESS)
        }
        Command::Man(args) => commands::man::run(&args),
        Command::Cost(args) => commands::cost::run(&args),
        Command::Run(args) => commands::run::run(&args),
        Command::Compare(args) => commands::compare::run(&args),
        Command::Report(args) => commands::report::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) if output::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            output::error(&err);
            ExitCode::from(EXIT_ERROR)
        }
    }
}
