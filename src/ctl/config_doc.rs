//! The dynamic config as a document an operator reads and edits (pure): TOML out, TOML or JSON in.
//!
//! Hazard: the DCS stores PostgreSQL parameters as text, but operators write `max_connections = 200`; numbers and
//! booleans under `[postgresql_parameters]` are turned into text (booleans as on/off) before the strict parse.

use std::collections::BTreeMap;

use anyhow::{bail, Context};

use crate::cluster::model::DynamicConfig;

/// Table name of the PostgreSQL parameters in the document (the field of [`DynamicConfig`]).
const PARAMETERS: &str = "postgresql_parameters";

/// The config as pretty TOML (what `show-config` prints and `edit-config` opens).
pub fn render(config: &DynamicConfig) -> anyhow::Result<String> {
    toml::to_string_pretty(config).context("rendering the dynamic config as TOML")
}

/// The file `edit-config` opens in the editor: a short guide, then [`render`].
pub fn editor_file(cluster: &str, config: &DynamicConfig) -> anyhow::Result<String> {
    Ok(format!(
        "# Dynamic configuration of cluster {cluster}, shared by every member (stored in the DCS).\n\
         # Save and quit to apply (you will see a diff and be asked to confirm); lines starting with # are ignored.\n\
         # Unknown keys are refused. PostgreSQL parameters go under [{PARAMETERS}], e.g. work_mem = \"8MB\".\n\n{}",
        render(config)?
    ))
}

/// Parses a whole dynamic config from TOML, or JSON when the text starts with `{` (as `show-config -o json`
/// prints it). Unknown keys and wrong types are refused with the key named; values are not validated here.
pub fn parse(text: &str) -> anyhow::Result<DynamicConfig> {
    if text.trim_start().starts_with('{') {
        return parse_json(text);
    }
    let mut table: toml::Table =
        toml::from_str(text).map_err(|e| anyhow::anyhow!("not valid TOML: {}", with_key(text, &e)))?;
    if let Some(value) = table.remove(PARAMETERS) {
        let toml::Value::Table(raw) = value else {
            bail!(
                "{PARAMETERS}: expected a table of name = value, got a {}",
                value.type_str()
            );
        };
        let mut flat = BTreeMap::new();
        crate::config::flatten_settings("", raw, &mut flat).map_err(|e| anyhow::anyhow!("{PARAMETERS}: {e}"))?;
        let texts = flat.into_iter().map(|(k, v)| (k, toml::Value::String(v))).collect();
        table.insert(PARAMETERS.into(), toml::Value::Table(texts));
    }
    // Re-serialized so that toml's own error names the offending key.
    let normalized = toml::to_string(&table).context("re-encoding the document")?;
    toml::from_str(&normalized).map_err(|e| anyhow::anyhow!("{}", with_key(&normalized, &e)))
}

/// toml's message prefixed with the key of the line it points at (its own text shows the key only in an excerpt).
fn with_key(text: &str, e: &toml::de::Error) -> String {
    let key = e.span().and_then(|span| {
        let start = text[..span.start.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
        let line = text[start..].lines().next()?.trim();
        Some(line.split('=').next().unwrap_or(line).trim().to_string())
    });
    let message = e.message().trim().replace('\n', "; ");
    match key.filter(|k| !k.is_empty()) {
        Some(key) => format!("{key}: {message}"),
        None => message,
    }
}

fn parse_json(text: &str) -> anyhow::Result<DynamicConfig> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| anyhow::anyhow!("not valid JSON: {e}"))?;
    from_json_value(value)
}

/// A whole dynamic config from a JSON value (`show-config -o json`'s shape; PostgreSQL parameters may be numbers or
/// booleans); unknown keys and wrong types are refused with the key named.
pub fn from_json_value(mut value: serde_json::Value) -> anyhow::Result<DynamicConfig> {
    if let Some(params) = value.get_mut(PARAMETERS).and_then(|p| p.as_object_mut()) {
        for (name, v) in params.iter_mut() {
            *v = match v {
                serde_json::Value::String(_) => continue,
                serde_json::Value::Bool(b) => serde_json::Value::String(if *b { "on" } else { "off" }.into()),
                serde_json::Value::Number(n) => serde_json::Value::String(n.to_string()),
                other => bail!("{PARAMETERS}.{name}: expected a string, number or boolean, got {other}"),
            };
        }
    }
    serde_json::from_value(value).map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_then_parse_is_identity() {
        let mut c = DynamicConfig::default();
        c.postgresql_parameters.insert("work_mem".into(), "8MB".into());
        c.postgresql_parameters
            .insert("pg_stat_statements.max".into(), "1000".into());
        let text = editor_file("main", &c).expect("renders");
        assert_eq!(parse(&text).expect("parses"), c);
        let json = serde_json::to_string_pretty(&c).expect("json");
        assert_eq!(parse(&json).expect("parses JSON"), c);
    }

    #[test]
    fn parameters_may_be_numbers_booleans_or_dotted() {
        let c = parse("ttl_ms = 3000\n[postgresql_parameters]\nmax_connections = 200\nhot_standby_feedback = true\npg_stat_statements.max = 10\n")
            .expect("parses");
        assert_eq!(c.ttl_ms, 3000);
        assert_eq!(
            c.loop_wait_ms,
            DynamicConfig::default().loop_wait_ms,
            "missing keys keep defaults"
        );
        assert_eq!(c.postgresql_parameters["max_connections"], "200");
        assert_eq!(c.postgresql_parameters["hot_standby_feedback"], "on");
        assert_eq!(c.postgresql_parameters["pg_stat_statements.max"], "10");
    }

    #[test]
    fn errors_name_the_key() {
        for (text, needle) in [
            ("bogus = 1\n", "bogus"),
            ("ttl_ms = \"abc\"\n", "ttl_ms"),
            ("ttl_ms = -5\n", "ttl_ms"),
            ("paused = 3\n", "paused"),
            ("postgresql_parameters = 3\n", "postgresql_parameters"),
            ("[postgresql_parameters]\nwork_mem = [1]\n", "work_mem"),
            ("ttl_ms = \n", "TOML"),
            ("{\"bogus\": 1}", "bogus"),
            ("{\"postgresql_parameters\": {\"work_mem\": [1]}}", "work_mem"),
        ] {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }
}
