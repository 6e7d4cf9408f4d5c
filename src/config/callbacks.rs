//! `[postgresql.callbacks]` and `postgresql.pre_promote`: Patroni's hook commands, their timeouts, and their checks.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::validate::Report;
use super::PostgresqlSection;

/// A hook's command: one command line split like a POSIX shell word list (Patroni's `shlex.split`; no shell runs
/// it, so no `$VAR`, pipes or redirections), or the argv written as an array.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum HookCommand {
    /// `on_start = "/usr/local/bin/hook --verbose"`
    Line(String),
    /// `on_start = ["/usr/local/bin/hook", "--verbose"]`
    Argv(Vec<String>),
}

impl HookCommand {
    /// The program and its arguments, or why the command cannot be run.
    pub fn argv(&self) -> Result<Vec<String>, String> {
        let argv = match self {
            HookCommand::Line(line) if line.trim().is_empty() => return Err("is empty".into()),
            HookCommand::Line(line) => shlex::split(line)
                .ok_or_else(|| format!("{line:?} cannot be split into words (unbalanced quotes or a trailing '\\')"))?,
            HookCommand::Argv(argv) => argv.clone(),
        };
        match argv.first() {
            None => Err("is an empty array".into()),
            Some(program) if program.is_empty() => Err("names no program (its first word is empty)".into()),
            Some(_) => Ok(argv),
        }
    }
}

impl<'de> Deserialize<'de> for HookCommand {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CommandVisitor;
        impl<'de> Visitor<'de> for CommandVisitor {
            type Value = HookCommand;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command line (string) or an argv array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HookCommand, E> {
                Ok(HookCommand::Line(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<HookCommand, A::Error> {
                let mut argv = Vec::new();
                while let Some(word) = seq.next_element::<String>()? {
                    argv.push(word);
                }
                Ok(HookCommand::Argv(argv))
            }
        }
        deserializer.deserialize_any(CommandVisitor)
    }
}

/// `[postgresql.callbacks]`: commands run after the fact, in the background, as
/// `<command> <action> <role> <cluster>` (Patroni's callbacks).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallbacksSection {
    /// `postgresql.callbacks.on_start` (`PGHA_POSTGRESQL__CALLBACKS__ON_START`): after pgha started PostgreSQL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_start: Option<HookCommand>,
    /// `postgresql.callbacks.on_stop`: after pgha stopped PostgreSQL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_stop: Option<HookCommand>,
    /// `postgresql.callbacks.on_restart`: after a restart (`pgha ctl restart`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_restart: Option<HookCommand>,
    /// `postgresql.callbacks.on_reload`: after pgha reloaded PostgreSQL's configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_reload: Option<HookCommand>,
    /// `postgresql.callbacks.on_role_change`: after a promotion (role `primary`) or when a former primary runs again
    /// as a replica (role `replica`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_role_change: Option<HookCommand>,
}

impl CallbacksSection {
    /// Every callback as (key name, command), set or not.
    pub fn entries(&self) -> [(&'static str, &Option<HookCommand>); 5] {
        [
            ("on_start", &self.on_start),
            ("on_stop", &self.on_stop),
            ("on_restart", &self.on_restart),
            ("on_reload", &self.on_reload),
            ("on_role_change", &self.on_role_change),
        ]
    }
}

/// `postgresql.pre_promote_on_timeout`: what a `pre_promote` that did not end within its timeout means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrePromoteOnTimeout {
    /// Do not promote: release the leader key (fail closed, like a non-zero exit).
    #[default]
    Veto,
    /// Promote anyway.
    Promote,
}

/// The smallest timeout of a hook, in ms.
const MIN_TIMEOUT_MS: u64 = 100;

/// Checks the hook keys of `[postgresql]` (commands that cannot be split, timeouts too small).
pub(super) fn validate(pg: &PostgresqlSection, r: &mut Report) {
    let hint = "write a command line such as \"/usr/local/bin/hook --flag\" (quoted like a shell word list), \
                or the argv as an array: [\"/usr/local/bin/hook\", \"--flag\"]";
    for (name, command) in pg.callbacks.entries() {
        if let Some(Err(e)) = command.as_ref().map(HookCommand::argv) {
            r.add(format!("postgresql.callbacks.{name}"), e, hint);
        }
    }
    if let Some(Err(e)) = pg.pre_promote.as_ref().map(HookCommand::argv) {
        r.add("postgresql.pre_promote", e, hint);
    }
    for (key, value, default) in [
        ("postgresql.pre_promote_timeout_ms", pg.pre_promote_timeout_ms, 10_000),
        ("postgresql.callback_timeout_ms", pg.callback_timeout_ms, 30_000),
    ] {
        if value < MIN_TIMEOUT_MS {
            r.add(
                key,
                format!("{value} ms is below the minimum of {MIN_TIMEOUT_MS} ms"),
                format!("the default is {default}"),
            );
        }
    }
}
