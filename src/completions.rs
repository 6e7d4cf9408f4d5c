//! `pgha completions` and `pgha man`: shell completion scripts and roff manual pages generated from the clap CLI.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::cli::{Cli, ShellArg};

/// The completion script for `shell`. Rendered into memory: clap_complete panics on a failed write (e.g. a
/// closed pipe), so the caller writes the bytes and handles the error.
pub fn completions(shell: ShellArg) -> Vec<u8> {
    let shell = match shell {
        ShellArg::Bash => clap_complete::Shell::Bash,
        ShellArg::Zsh => clap_complete::Shell::Zsh,
        ShellArg::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "pgha", &mut out);
    out
}

/// The top-level manual page, pgha(1), in roff.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    Ok(out)
}

/// Writes pgha.1 and one page per visible subcommand (pgha-run.1, pgha-ctl-switchover.1, ...) into `dir`,
/// creating it; returns the section-1 pages now in `dir`, sorted.
pub fn man_pages(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(Cli::command(), dir)?;
    let mut pages = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "1") {
            pages.push(path);
        }
    }
    pages.sort();
    Ok(pages)
}
