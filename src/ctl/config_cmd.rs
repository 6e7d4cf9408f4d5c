//! The dynamic cluster configuration in the DCS, shared by `show-config`, `edit-config` and `pause`: read, `--set` /
//! `--pg` assignments, validation, and the compare-and-swap write.

use anyhow::{bail, Context};

use super::output;
use crate::cli::Output;
use crate::cluster::keys::Keys;
use crate::cluster::model::{DynamicConfig, PermanentSlot, SlotKind};
use crate::dcs::client::DcsClient;
use crate::dcs::types::{Compare, CompareTarget, Op, Txn};

/// Short names operators know from Patroni, mapped to the stored keys.
const ALIASES: &[(&str, &str)] = &[
    ("ttl", "ttl_ms"),
    ("loop_wait", "loop_wait_ms"),
    ("primary_start_timeout", "primary_start_timeout_ms"),
    ("pause", "paused"),
];

/// Applies `key=value` assignments without the cross-key checks (pure): unknown keys and values of the wrong type
/// are refused. Any scalar field of [`DynamicConfig`] can be set, typed by its current value.
pub fn set_values(config: DynamicConfig, settings: &[String]) -> anyhow::Result<DynamicConfig> {
    use serde_json::Value;
    let mut doc = serde_json::to_value(&config)?;
    for setting in settings {
        let Some(fields) = doc.as_object_mut() else {
            bail!("the dynamic config is not an object");
        };
        let (key, text) = setting
            .split_once('=')
            .with_context(|| format!("--set {setting:?}: expected key=value"))?;
        let (key, text) = (key.trim(), text.trim());
        let key = ALIASES.iter().find(|(a, _)| *a == key).map_or(key, |(_, k)| *k);
        let known = || {
            let names: Vec<&str> = fields
                .iter()
                .filter(|(_, v)| !v.is_object())
                .map(|(k, _)| k.as_str())
                .collect();
            names.join(", ")
        };
        let value = match fields.get(key) {
            None => bail!("unknown setting {key:?} (known: {})", known()),
            Some(Value::Object(_)) => bail!("{key}: a table, set its entries with --pg name=value"),
            Some(Value::Bool(_)) => Value::Bool(match text {
                "true" | "on" | "yes" => true,
                "false" | "off" | "no" => false,
                other => bail!("{key}: {other:?} is not a boolean (true/false, on/off)"),
            }),
            Some(Value::Number(_)) => match text.parse::<u64>() {
                Ok(n) => Value::from(n),
                Err(_) => match text.parse::<i64>() {
                    Ok(n) => Value::from(n),
                    Err(_) => bail!("{key}: {text:?} is not an integer"),
                },
            },
            Some(Value::String(_)) => Value::String(text.to_string()),
            // Optional fields: a JSON scalar if it parses as one, else text.
            Some(_) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())),
        };
        fields.insert(key.to_string(), value);
        // Checked per key so that a type error names it.
        serde_json::from_value::<DynamicConfig>(doc.clone()).map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
    }
    Ok(serde_json::from_value(doc)?)
}

/// Applies `name=value` PostgreSQL parameters (`name=` removes one) to a config (pure).
pub fn apply_parameters(mut config: DynamicConfig, parameters: &[String]) -> anyhow::Result<DynamicConfig> {
    use crate::postgres::render::{is_owned_parameter, is_parameter_name};
    for setting in parameters {
        let (name, value) = setting
            .split_once('=')
            .with_context(|| format!("--pg {setting:?}: expected name=value"))?;
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if !is_parameter_name(&name) {
            bail!("--pg {name:?}: not a PostgreSQL parameter name");
        }
        if is_owned_parameter(&name) {
            bail!("--pg {name}: set by pgha itself (from [postgresql] and [tls]), not through the dynamic config");
        }
        if value.is_empty() {
            config.postgresql_parameters.remove(&name);
        } else {
            config.postgresql_parameters.insert(name, value.to_string());
        }
    }
    Ok(config)
}

/// Applies `--slot` specs (pure): `name=physical`, `name=logical:PLUGIN:DATABASE`, `name=` removes the slot.
pub fn apply_slots(mut config: DynamicConfig, specs: &[String]) -> anyhow::Result<DynamicConfig> {
    for spec in specs {
        let (name, value) = spec
            .split_once('=')
            .with_context(|| format!("--slot {spec:?}: expected name=physical or name=logical:PLUGIN:DATABASE"))?;
        let name = name.trim().to_string();
        let parts: Vec<&str> = value.trim().split(':').collect();
        let slot = match parts.as_slice() {
            [""] => {
                config.slots.remove(&name);
                continue;
            }
            ["physical"] => PermanentSlot {
                kind: SlotKind::Physical,
                plugin: None,
                database: None,
            },
            ["logical", plugin, database] => PermanentSlot {
                kind: SlotKind::Logical,
                plugin: Some(plugin.to_string()),
                database: Some(database.to_string()),
            },
            _ => bail!("--slot {spec:?}: expected name=physical, name=logical:PLUGIN:DATABASE or name= (remove)"),
        };
        validate_slot(&name, &slot, &config)?;
        config.slots.insert(name, slot);
    }
    Ok(config)
}

/// Cross-key and value checks of a whole dynamic config (pure); every error names the key.
pub fn validate(config: DynamicConfig) -> anyhow::Result<DynamicConfig> {
    use crate::postgres::render::{is_owned_parameter, is_parameter_name};
    if config.ttl_ms < 500 {
        bail!("ttl_ms {} is below the minimum of 500 ms", config.ttl_ms);
    }
    if config.loop_wait_ms < 50 || config.loop_wait_ms.saturating_mul(2) > config.ttl_ms {
        bail!(
            "loop_wait_ms {} must be at least 50 and at most ttl_ms / 2 ({}): the lease must survive a missed renewal",
            config.loop_wait_ms,
            config.ttl_ms / 2
        );
    }
    if let Some(standby) = &config.standby_cluster {
        standby.check().map_err(|e| anyhow::anyhow!(e))?;
    }
    if config.synchronous_node_count == 0 {
        bail!("synchronous_node_count must be at least 1");
    }
    if config.primary_start_timeout_ms == 0 {
        bail!("primary_start_timeout_ms must be above 0: a crashed primary needs time to restart in place");
    }
    for (name, value) in &config.postgresql_parameters {
        if !is_parameter_name(name) {
            bail!("postgresql_parameters.{name}: not a PostgreSQL parameter name");
        }
        if name.chars().any(|c| c.is_ascii_uppercase()) {
            bail!("postgresql_parameters.{name}: write parameter names in lower case");
        }
        if is_owned_parameter(name) {
            bail!("postgresql_parameters.{name}: set by pgha itself (from [postgresql] and [tls]), not here");
        }
        if value.chars().any(char::is_control) {
            bail!("postgresql_parameters.{name}: the value contains a control character (line break?)");
        }
        if name == "wal_level" && !crate::postgres::render::is_wal_level(value) {
            bail!("postgresql_parameters.wal_level: {value:?} cannot feed a standby; use replica or logical");
        }
    }
    for (name, slot) in &config.slots {
        validate_slot(name, slot, &config)?;
    }
    Ok(config)
}

/// Checks one permanent slot: a valid name, and a plugin and database exactly when it is logical.
fn validate_slot(name: &str, slot: &PermanentSlot, config: &DynamicConfig) -> anyhow::Result<()> {
    if !crate::postgres::names::is_valid_slot_name(name) {
        bail!("slots.{name}: a slot name is 1 to 63 of a-z, 0-9 and '_'");
    }
    let nonempty = |v: &Option<String>| v.as_deref().is_some_and(|t| !t.trim().is_empty());
    match slot.kind {
        SlotKind::Physical if slot.plugin.is_some() || slot.database.is_some() => {
            bail!("slots.{name}: a physical slot has no plugin or database (type = \"logical\" for those)")
        }
        SlotKind::Logical if !nonempty(&slot.plugin) || !nonempty(&slot.database) => bail!(
            "slots.{name}: a logical slot needs plugin and database, e.g. plugin = \"pgoutput\", database = \"app\""
        ),
        SlotKind::Logical
            if config
                .postgresql_parameters
                .get("wal_level")
                .is_some_and(|v| !v.trim().eq_ignore_ascii_case("logical")) =>
        {
            bail!("slots.{name}: a logical slot needs wal_level = logical, and postgresql_parameters.wal_level says otherwise")
        }
        _ => Ok(()),
    }
}

/// Stores `config` if the key is still at `revision` (compare-and-swap); false when someone changed it meanwhile.
pub(crate) async fn write(dcs: &DcsClient, keys: &Keys, config: &DynamicConfig, revision: i64) -> anyhow::Result<bool> {
    let txn = Txn {
        compares: vec![Compare {
            key: keys.config().into_bytes(),
            target: CompareTarget::ModRevision(revision),
        }],
        success: vec![Op::Put {
            key: keys.config().into_bytes(),
            value: serde_json::to_vec(config)?,
            lease: 0,
        }],
        failure: vec![],
    };
    Ok(dcs.txn(txn).await?.succeeded)
}

/// The dynamic config and the revision of its key.
pub(crate) async fn read(dcs: &DcsClient, keys: &Keys) -> anyhow::Result<(DynamicConfig, i64)> {
    let (kvs, _) = dcs.get(keys.config().as_bytes(), false).await?;
    let kv = kvs
        .first()
        .context("the cluster is not initialized (no dynamic config in the DCS)")?;
    let config = serde_json::from_slice(&kv.value).context("the dynamic config in the DCS is unreadable")?;
    Ok((config, kv.mod_revision))
}

/// Prints the dynamic configuration: the TOML document `edit-config` opens, or JSON.
pub async fn show(dcs: &DcsClient, cluster: &str, out: Output) -> anyhow::Result<()> {
    let (config, _) = read(dcs, &Keys::new(cluster)).await?;
    match out {
        Output::Json => output::json(&config),
        Output::Table => {
            print!("{}", super::config_doc::render(&config)?);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_specs_table() {
        let ok = apply_slots(
            DynamicConfig::default(),
            &["cdc=logical:pgoutput:app".into(), "barman=physical".into()],
        )
        .expect("valid specs");
        assert_eq!(ok.logical_slots().len(), 1);
        assert_eq!(ok.physical_slots(), vec!["barman".to_string()]);
        let removed = apply_slots(ok.clone(), &["cdc=".into()]).expect("removal");
        assert!(removed.logical_slots().is_empty());
        let mut replica_only = DynamicConfig::default();
        replica_only
            .postgresql_parameters
            .insert("wal_level".into(), "replica".into());
        for (base, spec, needle) in [
            (DynamicConfig::default(), "cdc", "expected name=physical"),
            (
                DynamicConfig::default(),
                "cdc=logical:pgoutput",
                "expected name=physical",
            ),
            (DynamicConfig::default(), "Bad-Name=physical", "slots.Bad-Name"),
            (
                DynamicConfig::default(),
                "cdc=logical::app",
                "needs plugin and database",
            ),
            (DynamicConfig::default(), "cdc=streaming", "expected name=physical"),
            (replica_only, "cdc=logical:pgoutput:app", "wal_level = logical"),
        ] {
            let err = apply_slots(base, &[spec.into()]).expect_err(spec).to_string();
            assert!(err.contains(needle), "{spec}: {err}");
        }
        let mut bad_level = DynamicConfig::default();
        bad_level
            .postgresql_parameters
            .insert("wal_level".into(), "minimal".into());
        let err = validate(bad_level).expect_err("minimal").to_string();
        assert!(err.contains("wal_level"), "{err}");
    }

    #[test]
    fn settings_table() {
        let base = DynamicConfig::default();
        let ok = |s: &[&str]| {
            let settings: Vec<String> = s.iter().map(|x| x.to_string()).collect();
            set_values(base.clone(), &settings).and_then(validate)
        };
        assert_eq!(ok(&["ttl_ms=3000"]).expect("valid").ttl_ms, 3000);
        assert!(ok(&["paused=on"]).expect("valid").paused);
        assert_eq!(ok(&["ttl=4000", "loop_wait=1000"]).expect("aliases").loop_wait_ms, 1000);
        let err = ok(&["nope=1"]).expect_err("unknown").to_string();
        assert!(
            err.contains("nope") && err.contains("ttl_ms"),
            "names the key and the known ones: {err}"
        );
        let err = ok(&["ttl_ms=abc"]).expect_err("bad value").to_string();
        assert!(err.contains("ttl_ms") && err.contains("abc"), "{err}");
        assert_eq!(
            ok(&["maximum_lag_on_failover = 0"])
                .expect("valid")
                .maximum_lag_on_failover,
            0
        );
        for bad in [
            &["ttl_ms=100"][..],
            &["loop_wait_ms=2000"],
            &["ttl_ms=abc"],
            &["nope=1"],
            &["ttl_ms"],
            &["paused=maybe"],
            &["postgresql_parameters=x"],
        ] {
            assert!(ok(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn parameters_are_checked() {
        let mut c = DynamicConfig::default();
        c.postgresql_parameters.insert("work_mem".into(), "8MB".into());
        assert!(validate(c.clone()).is_ok());
        for (name, value) in [
            ("port", "1"),
            ("Work_Mem", "1"),
            ("bad name", "1"),
            ("work_mem", "1\nport=2"),
        ] {
            let mut bad = c.clone();
            bad.postgresql_parameters.insert(name.into(), value.into());
            let err = validate(bad).expect_err(name).to_string();
            assert!(err.contains(name), "{err}");
        }
    }
}
