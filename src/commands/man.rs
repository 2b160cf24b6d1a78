//! `effnet man`: manual pages (roff): `effnet(1)` and one page per subcommand, each with its
//! options, EXAMPLES and EXIT STATUS.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::CommandFactory;

use crate::cli::{Cli, ManArgs};
use crate::output;

pub fn run(args: &ManArgs) -> anyhow::Result<ExitCode> {
    let mut top = Cli::command();
    top.build();
    if let Some(dir) = &args.dir {
        if !dir.is_dir() {
            bail!("{}: no such folder for the manual pages", dir.display());
        }
        let mut pages = vec![("effnet".to_owned(), page(&top, None)?)];
        for sub in top.get_subcommands().filter(|s| s.get_name() != "help") {
            pages.push((format!("effnet-{}", sub.get_name()), page(&top, Some(sub))?));
        }
        for (name, text) in pages {
            let path: PathBuf = dir.join(format!("{name}.1"));
            output::write_text(&path, &[], args.force, &text)?;
            output::note(&format!("wrote {}", path.display()));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let text = match &args.subcommand {
        None => page(&top, None)?,
        Some(name) => {
            let sub = top
                .find_subcommand(name)
                .with_context(|| format!("no subcommand `{name}`"))?;
            page(&top, Some(sub))?
        }
    };
    output::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// The page of `sub` (or of `effnet` itself).
fn page(top: &clap::Command, sub: Option<&clap::Command>) -> anyhow::Result<String> {
    let (cmd, title) = match sub {
        Some(sub) => {
            let name = format!("effnet-{}", sub.get_name());
            let cmd = sub
                .clone()
                .name(name.clone())
                .bin_name(format!("effnet {}", sub.get_name()))
                .version(top.get_version().unwrap_or_default().to_owned());
            (cmd, name)
        }
        None => (top.clone(), "effnet".to_owned()),
    };
    let man = clap_mangen::Man::new(cmd.clone()).title(title.to_uppercase());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if sub.is_none() {
        man.render_subcommands_section(&mut out)?;
    }
    let mut text = String::from_utf8(out)?;
    if let Some(examples) = cmd.get_after_help().map(|h| h.to_string()) {
        text.push_str(".SH EXAMPLES\n");
        for line in examples.lines().skip_while(|l| l.ends_with(':')) {
            let line = line.trim();
            if !line.is_empty() {
                text.push_str(&format!(".PP\n.nf\n{}\n.fi\n", roff_escape(line)));
            }
        }
    }
    text.push_str(".SH \"EXIT STATUS\"\n");
    for (code, meaning) in exit_status(sub.map(|s| s.get_name())) {
        text.push_str(&format!(".TP\n{code}\n{}\n", roff_escape(meaning)));
    }
    text.push_str(".SH \"SEE ALSO\"\n");
    let see: Vec<String> = std::iter::once("effnet".to_owned())
        .chain(
            top.get_subcommands()
                .filter(|s| s.get_name() != "help")
                .map(|s| format!("effnet-{}", s.get_name())),
        )
        .filter(|n| *n != title)
        .map(|n| format!("\\fB{n}\\fR(1)"))
        .collect();
    text.push_str(&see.join(", "));
    text.push('\n');
    Ok(text)
}

/// What each exit code means for a subcommand.
fn exit_status(sub: Option<&str>) -> Vec<(u8, &'static str)> {
    let deviation = match sub {
        Some("audit") => Some("the model deviates from the spec (findings of severity error)"),
        Some("cost") => Some("a total grew past --max-increase over the --baseline"),
        Some("report") => Some(
            "the page was written, but the model deviates from its spec or a cost total grew past --max-increase over the --baseline",
        ),
        None => Some(
            "audit found deviations, or cost exceeded its budget (report: the page was written about such a model)",
        ),
        _ => None,
    };
    let mut codes = vec![(
        0,
        match sub {
            Some("audit") => "the model conforms",
            Some("report") => "the page was written, the model conforms and is within budget",
            _ => "success",
        },
    )];
    codes.extend(deviation.map(|d| (1, d)));
    codes.push((
        2,
        "usage error, or an input that cannot be read or an output that cannot be written (the message names the file)",
    ));
    codes
}

/// Escapes text for a roff line: backslashes, and a leading `.` or `'`.
fn roff_escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\e");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}
