//! `ctl show-config` and `ctl edit-config --set key=value`: the dynamic cluster configuration in the DCS.

use anyhow::{bail, Context};

use super::output;
use crate::cli::Output;
use crate::dcs::client::DcsClient;
use crate::dcs::types::{Compare, CompareTarget, Op, Txn};
use crate::ha::keys::Keys;
use crate::ha::model::{DynamicConfig, SyncMode};

fn boolean(key: &str, value: &str) -> anyhow::Result<bool> {
    match value {
        "true" | "on" | "yes" => Ok(true),
        "false" | "off" | "no" => Ok(false),
        other => bail!("{key}: {other:?} is not a boolean"),
    }
}

/// Applies `key=value` assignments to a config and validates the result (pure).
pub fn apply_settings(mut config: DynamicConfig, settings: &[String]) -> anyhow::Result<DynamicConfig> {
    for setting in settings {
        let (key, value) = setting
            .split_once('=')
            .with_context(|| format!("--set {setting:?}: expected key=value"))?;
        let (key, value) = (key.trim(), value.trim());
        let number = || {
            value
                .parse::<u64>()
                .with_context(|| format!("{key}: {value:?} is not a non-negative integer"))
        };
        match key {
            "ttl_ms" | "ttl" => config.ttl_ms = number()?,
            "loop_wait_ms" | "loop_wait" => config.loop_wait_ms = number()?,
            "maximum_lag_on_failover" => config.maximum_lag_on_failover = number()?,
            "primary_start_timeout_ms" | "primary_start_timeout" => config.primary_start_timeout_ms = number()?,
            "paused" | "pause" => config.paused = boolean(key, value)?,
            "synchronous_mode" => {
                config.synchronous_mode =
                    SyncMode::parse(value).with_context(|| format!("{key}: {value:?} is not off, on or quorum"))?
            }
            "synchronous_mode_strict" => config.synchronous_mode_strict = boolean(key, value)?,
            "synchronous_node_count" => {
                config.synchronous_node_count =
                    u32::try_from(number()?).with_context(|| format!("{key}: {value:?} is too large"))?
            }
            other => bail!(
                "unknown setting {other:?} (known: ttl_ms, loop_wait_ms, maximum_lag_on_failover, \
                 primary_start_timeout_ms, paused, synchronous_mode, synchronous_mode_strict, synchronous_node_count)"
            ),
        }
    }
    validate(config)
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

fn validate(config: DynamicConfig) -> anyhow::Result<DynamicConfig> {
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
    if config.synchronous_node_count == 0 {
        bail!("synchronous_node_count must be at least 1");
    }
    Ok(config)
}

fn lines(c: &DynamicConfig) -> Vec<(String, String)> {
    let mut v = vec![
        ("ttl_ms".into(), c.ttl_ms.to_string()),
        ("loop_wait_ms".into(), c.loop_wait_ms.to_string()),
        ("maximum_lag_on_failover".into(), c.maximum_lag_on_failover.to_string()),
        (
            "primary_start_timeout_ms".into(),
            c.primary_start_timeout_ms.to_string(),
        ),
        ("paused".into(), c.paused.to_string()),
        ("synchronous_mode".into(), c.synchronous_mode.as_str().to_string()),
        ("synchronous_mode_strict".into(), c.synchronous_mode_strict.to_string()),
        ("synchronous_node_count".into(), c.synchronous_node_count.to_string()),
    ];
    v.extend(
        c.postgresql_parameters
            .iter()
            .map(|(k, val)| (format!("postgresql.parameters.{k}"), val.clone())),
    );
    v
}

/// Stores `config` if the key is still at `revision` (compare-and-swap); false when someone changed it meanwhile.
pub(super) async fn write(dcs: &DcsClient, keys: &Keys, config: &DynamicConfig, revision: i64) -> anyhow::Result<bool> {
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
pub(super) async fn read(dcs: &DcsClient, keys: &Keys) -> anyhow::Result<(DynamicConfig, i64)> {
    let (kvs, _) = dcs.get(keys.config().as_bytes(), false).await?;
    let kv = kvs
        .first()
        .context("the cluster is not initialized (no dynamic config in the DCS)")?;
    let config = serde_json::from_slice(&kv.value).context("the dynamic config in the DCS is unreadable")?;
    Ok((config, kv.mod_revision))
}

/// Prints the dynamic configuration.
pub async fn show(dcs: &DcsClient, cluster: &str, out: Output) -> anyhow::Result<()> {
    let (config, _) = read(dcs, &Keys::new(cluster)).await?;
    if out == Output::Json {
        return output::json(&config);
    }
    for (k, v) in lines(&config) {
        println!("{k} = {v}");
    }
    Ok(())
}

/// Changes settings with a compare-and-swap, after showing the difference.
pub async fn edit(
    dcs: &DcsClient,
    cluster: &str,
    settings: &[String],
    pg: &[String],
    force: bool,
) -> anyhow::Result<()> {
    if settings.is_empty() && pg.is_empty() {
        bail!("nothing to change: give --set key=value or --pg name=value (repeatable)");
    }
    let keys = Keys::new(cluster);
    let (current, revision) = read(dcs, &keys).await?;
    let wanted = apply_parameters(apply_settings(current.clone(), settings)?, pg)?;
    let (old, new) = (lines(&current), lines(&wanted));
    let mut diff: Vec<String> = old
        .iter()
        .filter(|l| !new.contains(l))
        .map(|(k, v)| format!("-{k} = {v}"))
        .collect();
    diff.extend(
        new.iter()
            .filter(|l| !old.contains(l))
            .map(|(k, v)| format!("+{k} = {v}")),
    );
    if diff.is_empty() {
        println!("no change");
        return Ok(());
    }
    println!("{}", diff.join("\n"));
    if !force && !output::confirm("Apply these changes?")? {
        bail!("aborted");
    }
    if !write(dcs, &keys, &wanted, revision).await? {
        bail!("the configuration changed meanwhile: nothing was written, run the command again");
    }
    println!("configuration updated (a new ttl applies to each node's next DCS session)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_table() {
        let base = DynamicConfig::default();
        let ok = |s: &[&str]| apply_settings(base.clone(), &s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(ok(&["ttl_ms=3000"]).expect("valid").ttl_ms, 3000);
        assert!(ok(&["paused=on"]).expect("valid").paused);
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
        ] {
            assert!(ok(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
