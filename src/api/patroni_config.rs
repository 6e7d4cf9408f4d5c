//! `PATCH /config` and `PUT /config` bodies (pure): Patroni's names and units (`ttl: 30` seconds,
//! `postgresql.parameters`, `pause`) or pgha's own (`ttl_ms`, `postgresql_parameters`, as `show-config -o json`
//! prints them), applied to the dynamic config as a JSON merge patch (null resets a setting to its default and
//! removes a PostgreSQL parameter).

use serde_json::{Map, Value};

use crate::cluster::model::DynamicConfig;

/// Patroni's settings in seconds and their millisecond fields.
const SECONDS: &[(&str, &str)] = &[
    ("ttl", "ttl_ms"),
    ("loop_wait", "loop_wait_ms"),
    ("primary_start_timeout", "primary_start_timeout_ms"),
    ("master_start_timeout", "primary_start_timeout_ms"),
];

/// A body in pgha's names (pure). Unknown Patroni keys are refused by the strict parse that follows, naming them.
pub fn normalize(body: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (key, value) in body {
        if let Some((_, ms)) = SECONDS.iter().find(|(s, _)| *s == key) {
            let value = match value {
                Value::Null => Value::Null,
                v => {
                    let seconds = v
                        .as_u64()
                        .or_else(|| v.as_str().and_then(|t| t.trim().parse().ok()))
                        .ok_or_else(|| format!("{key}: {v} is not a whole number of seconds"))?;
                    Value::from(seconds.saturating_mul(1000))
                }
            };
            out.insert(ms.to_string(), value);
            continue;
        }
        match key.as_str() {
            "pause" => {
                out.insert("paused".into(), value.clone());
            }
            "synchronous_mode" => {
                let mode = match value {
                    Value::Bool(true) => Value::from("on"),
                    Value::Bool(false) => Value::from("off"),
                    other => other.clone(),
                };
                out.insert(key.clone(), mode);
            }
            "postgresql" => {
                let Value::Object(pg) = value else {
                    return Err("postgresql: expected an object with parameters".into());
                };
                for (sub, v) in pg {
                    match sub.as_str() {
                        "parameters" => {
                            out.insert("postgresql_parameters".into(), v.clone());
                        }
                        other => {
                            return Err(format!(
                                "postgresql.{other}: not a dynamic setting of pgha (only postgresql.parameters is; \
                                 the rest is in each node's [postgresql] section)"
                            ))
                        }
                    }
                }
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(out)
}

/// `PATCH /config`: `body` merged into `current` (pure); null resets a top-level setting to its default and removes
/// an entry of a table (a PostgreSQL parameter, a slot). The result still has to pass `config_cmd::validate`.
pub fn patch(current: &DynamicConfig, body: &Map<String, Value>) -> Result<DynamicConfig, String> {
    let changes = normalize(body)?;
    let mut doc = serde_json::to_value(current).map_err(|e| e.to_string())?;
    let defaults = serde_json::to_value(DynamicConfig::default()).map_err(|e| e.to_string())?;
    let Some(fields) = doc.as_object_mut() else {
        return Err("the dynamic config is not an object".into());
    };
    for (key, value) in changes {
        match (value, fields.get_mut(&key)) {
            (Value::Null, _) => match defaults.get(&key) {
                Some(d) => {
                    fields.insert(key, d.clone());
                }
                None => {
                    fields.remove(&key);
                }
            },
            (Value::Object(entries), Some(Value::Object(table))) => {
                for (name, v) in entries {
                    if v.is_null() {
                        table.remove(&name);
                    } else {
                        table.insert(name, v);
                    }
                }
            }
            (Value::Object(entries), None) => {
                let kept: Map<String, Value> = entries.into_iter().filter(|(_, v)| !v.is_null()).collect();
                fields.insert(key, Value::Object(kept));
            }
            (value, _) => {
                fields.insert(key, value);
            }
        }
    }
    crate::ctl::config_doc::from_json_value(doc).map_err(|e| format!("{e:#}"))
}

/// `PUT /config`: the whole config from `body` (pure); settings left out take their defaults.
pub fn replace(body: &Map<String, Value>) -> Result<DynamicConfig, String> {
    let doc = Value::Object(normalize(body)?);
    crate::ctl::config_doc::from_json_value(doc).map_err(|e| format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> Map<String, Value> {
        match serde_json::from_str(json).expect("test JSON") {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn patch_table() {
        let mut current = DynamicConfig::default();
        current.postgresql_parameters.insert("work_mem".into(), "4MB".into());
        current.ttl_ms = 5000;
        // (body, check on the result, or the error's needle)
        type Check = fn(&DynamicConfig) -> bool;
        let cases: Vec<(&str, Result<Check, &str>)> = vec![
            (
                r#"{"ttl": 30, "loop_wait": 10}"#,
                Ok(|c| c.ttl_ms == 30_000 && c.loop_wait_ms == 10_000),
            ),
            (
                r#"{"ttl_ms": 4000}"#,
                Ok(|c| c.ttl_ms == 4000 && c.postgresql_parameters["work_mem"] == "4MB"),
            ),
            (
                r#"{"postgresql": {"parameters": {"max_connections": 200, "work_mem": null}}}"#,
                Ok(|c| {
                    c.postgresql_parameters.get("max_connections").map(String::as_str) == Some("200")
                        && !c.postgresql_parameters.contains_key("work_mem")
                }),
            ),
            (
                r#"{"postgresql_parameters": {"hot_standby_feedback": true}}"#,
                Ok(|c| c.postgresql_parameters["hot_standby_feedback"] == "on" && c.postgresql_parameters.len() == 2),
            ),
            (r#"{"ttl": null}"#, Ok(|c| c.ttl_ms == DynamicConfig::default().ttl_ms)),
            (r#"{"pause": true}"#, Ok(|c| c.paused)),
            (
                r#"{"synchronous_mode": true}"#,
                Ok(|c| c.synchronous_mode == crate::cluster::model::SyncMode::On),
            ),
            (
                r#"{"maximum_lag_on_failover": 1048576}"#,
                Ok(|c| c.maximum_lag_on_failover == 1 << 20),
            ),
            (r#"{"retry_timeout": 10}"#, Err("retry_timeout")),
            (r#"{"ttl": "soon"}"#, Err("ttl")),
            (
                r#"{"postgresql": {"use_pg_rewind": true}}"#,
                Err("postgresql.use_pg_rewind"),
            ),
            (r#"{"postgresql_parameters": {"work_mem": [1]}}"#, Err("work_mem")),
        ];
        for (text, want) in cases {
            let got = patch(&current, &body(text));
            match want {
                Ok(check) => assert!(check(&got.clone().expect(text)), "{text}: {got:?}"),
                Err(needle) => {
                    let err = got.expect_err(text);
                    assert!(err.contains(needle), "{text}: {err}");
                }
            }
        }
        let whole = replace(&body(
            r#"{"ttl": 20, "postgresql": {"parameters": {"work_mem": "8MB"}}}"#,
        ))
        .expect("PUT");
        assert_eq!(whole.ttl_ms, 20_000);
        assert_eq!(
            whole.loop_wait_ms,
            DynamicConfig::default().loop_wait_ms,
            "left out = default"
        );
        assert_eq!(whole.postgresql_parameters.len(), 1);
    }
}
