//! `ctl edit-config`: change the dynamic config with `--set`/`--pg`, a whole document (`--apply FILE`, `-` = stdin)
//! or `$EDITOR`. Whatever the source, the result is validated, shown as a unified diff, confirmed (unless `--force`)
//! and stored with a compare-and-swap on the revision that was read, so a concurrent change is never overwritten.

use std::io::{IsTerminal, Read};
use std::path::Path;

use anyhow::{bail, Context};

use super::config_cmd::{apply_parameters, apply_slots, read, set_values, validate, write};
use super::{config_doc, diff, output};
use crate::cluster::keys::Keys;
use crate::cluster::model::DynamicConfig;
use crate::dcs::client::DcsClient;

/// What `edit-config` was asked to do.
pub struct EditArgs<'a> {
    pub set: &'a [String],
    pub pg: &'a [String],
    /// `name=physical`, `name=logical:PLUGIN:DATABASE` or `name=` (remove).
    pub slots: &'a [String],
    /// Replace the whole config from this file (`-` = stdin) before `set`/`pg` apply.
    pub apply: Option<&'a Path>,
    pub force: bool,
}

/// Runs `edit-config`.
pub async fn run(dcs: &DcsClient, cluster: &str, args: EditArgs<'_>) -> anyhow::Result<()> {
    // Everything checkable without the DCS first: bad input fails fast, even with the cluster down.
    set_values(DynamicConfig::default(), args.set)?;
    apply_parameters(DynamicConfig::default(), args.pg)?;
    apply_slots(DynamicConfig::default(), args.slots)?;
    let applied = match args.apply {
        Some(path) => Some(read_document(path, args.force)?),
        None => None,
    };
    let interactive = applied.is_none() && args.set.is_empty() && args.pg.is_empty() && args.slots.is_empty();
    let editor = if interactive { Some(editor()?) } else { None };
    let keys = Keys::new(cluster);
    let (current, revision) = read(dcs, &keys).await?;
    let wanted = if let Some(editor) = editor {
        edit_in_editor(&editor, cluster, &current).await?
    } else {
        let base = applied.unwrap_or_else(|| current.clone());
        validate(apply_slots(
            apply_parameters(set_values(base, args.set)?, args.pg)?,
            args.slots,
        )?)?
    };
    let (old, new) = (config_doc::render(&current)?, config_doc::render(&wanted)?);
    let Some(changes) = diff::unified("current", "new", &old, &new) else {
        println!("no change");
        return Ok(());
    };
    println!("{changes}");
    if !args.force && !output::confirm("Apply these changes?")? {
        bail!("aborted: nothing was changed");
    }
    if !write(dcs, &keys, &wanted, revision).await? {
        bail!(
            "the dynamic configuration was changed by someone else after it was read (revision {revision}): \
             nothing was written; run the command again"
        );
    }
    println!("configuration updated");
    Ok(())
}

/// Reads and validates a whole config document from `path` (`-` = stdin).
fn read_document(path: &Path, force: bool) -> anyhow::Result<DynamicConfig> {
    let text = if path == Path::new("-") {
        if !force {
            bail!("--apply - reads the config from stdin, which then cannot answer the confirmation: add --force");
        }
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("--apply -: reading stdin")?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("--apply {}: cannot read it", path.display()))?
    };
    let config = config_doc::parse(&text).with_context(|| format!("--apply {}", path.display()))?;
    validate(config).with_context(|| format!("--apply {}", path.display()))
}

/// The editor command: `$VISUAL`, else `$EDITOR` (as git and crontab choose), else `vi` when a terminal can drive it.
fn editor() -> anyhow::Result<String> {
    pick_editor(
        std::env::var("VISUAL").ok(),
        std::env::var("EDITOR").ok(),
        std::io::stdin().is_terminal(),
    )
}

/// [`editor`]'s choice (pure); empty variables count as unset.
fn pick_editor(visual: Option<String>, editor: Option<String>, terminal: bool) -> anyhow::Result<String> {
    let set = |v: Option<String>| v.filter(|e| !e.trim().is_empty());
    match set(visual).or(set(editor)) {
        Some(editor) => Ok(editor),
        None if terminal => Ok("vi".to_string()),
        None => bail!(
            "no $VISUAL or $EDITOR set and stdin is not a terminal: set one, or use --apply FILE or --set key=value"
        ),
    }
}

/// Opens the config in `editor` and returns the validated result. An invalid edit is kept in its file so the
/// operator can fix it and `--apply` it.
async fn edit_in_editor(editor: &str, cluster: &str, current: &DynamicConfig) -> anyhow::Result<DynamicConfig> {
    let editor = editor.to_string();
    let mut file = tempfile::Builder::new()
        .prefix("pgha-config-")
        .suffix(".toml")
        .tempfile()
        .context("creating the file to edit")?;
    std::io::Write::write_all(&mut file, config_doc::editor_file(cluster, current)?.as_bytes())
        .context("writing the file to edit")?;
    let path = file.path().to_path_buf();
    let shown = editor.clone();
    // `sh -c` so that EDITOR may carry arguments ("code --wait"), as with git.
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("sh")
            .arg(&path)
            .status()
    })
    .await
    .context("waiting for the editor")?
    .with_context(|| format!("starting the editor {shown:?}"))?;
    if !status.success() {
        bail!("the editor {shown:?} exited with {status}: nothing was changed");
    }
    let text = std::fs::read_to_string(file.path()).context("reading the edited file")?;
    match config_doc::parse(&text).and_then(validate) {
        Ok(config) => Ok(config),
        Err(e) => {
            let kept = file.keep().map(|(_, p)| p.display().to_string()).unwrap_or_default();
            bail!("the edited config is invalid: {e:#}; nothing was changed (your edit is kept in {kept})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_choice_table() {
        let s = |v: &str| Some(v.to_string());
        let cases = [
            (s("code --wait"), s("nano"), false, Some("code --wait")),
            (None, s("nano"), false, Some("nano")),
            (s(" "), s("nano"), false, Some("nano")),
            (None, None, true, Some("vi")),
            (None, s(""), true, Some("vi")),
            (None, None, false, None),
        ];
        for (visual, editor, terminal, want) in cases {
            let got = pick_editor(visual.clone(), editor.clone(), terminal);
            match want {
                Some(w) => assert_eq!(got.expect("an editor"), w, "{visual:?} {editor:?}"),
                None => assert!(got.expect_err("none").to_string().contains("$VISUAL"), "{visual:?}"),
            }
        }
    }
}
