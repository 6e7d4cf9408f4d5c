//! `ctl dcs get|put|del|watch`: inspection and repair of DCS keys.

use anyhow::bail;
use serde::Serialize;

use super::output;
use crate::cli::{DcsCommand, Output};
use crate::dcs::client::{DcsClient, WatchMessage};
use crate::dcs::types::{Event, EventKind, KeyValue};

#[derive(Serialize)]
struct KvJson {
    key: String,
    value: String,
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    lease: i64,
}

impl From<&KeyValue> for KvJson {
    fn from(kv: &KeyValue) -> KvJson {
        KvJson {
            key: String::from_utf8_lossy(&kv.key).into_owned(),
            value: String::from_utf8_lossy(&kv.value).into_owned(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        }
    }
}

#[derive(Serialize)]
struct EventJson {
    kind: &'static str,
    #[serde(flatten)]
    kv: KvJson,
}

fn event_json(e: &Event) -> EventJson {
    let kind = match e.kind {
        EventKind::Put => "PUT",
        EventKind::Delete => "DELETE",
    };
    EventJson {
        kind,
        kv: KvJson::from(&e.kv),
    }
}

/// Runs one `ctl dcs` command.
pub async fn run(client: &DcsClient, cmd: DcsCommand, out: Output) -> anyhow::Result<()> {
    match cmd {
        DcsCommand::Get { key, prefix } => {
            let (kvs, revision) = client.get(key.as_bytes(), prefix).await?;
            if !prefix && kvs.is_empty() {
                bail!("key {key:?} not found (revision {revision})");
            }
            let list: Vec<KvJson> = kvs.iter().map(KvJson::from).collect();
            if out == Output::Json {
                return output::json(&serde_json::json!({ "revision": revision, "kvs": list }));
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|k| {
                    let lease = if k.lease == 0 {
                        "-".to_string()
                    } else {
                        k.lease.to_string()
                    };
                    vec![
                        k.key.clone(),
                        k.value.clone(),
                        k.mod_revision.to_string(),
                        k.version.to_string(),
                        lease,
                    ]
                })
                .collect();
            println!(
                "{}",
                output::table(&["KEY", "VALUE", "MOD REV", "VERSION", "LEASE"], &rows)
            );
        }
        DcsCommand::Put { key, value } => {
            let revision = client.put(key.as_bytes(), value.as_bytes(), 0).await?;
            match out {
                Output::Json => output::json(&serde_json::json!({ "revision": revision }))?,
                Output::Table => println!("OK (revision {revision})"),
            }
        }
        DcsCommand::Del { key, prefix } => {
            let deleted = client.delete(key.as_bytes(), prefix).await?;
            match out {
                Output::Json => output::json(&serde_json::json!({ "deleted": deleted }))?,
                Output::Table => println!("deleted {deleted}"),
            }
        }
        DcsCommand::Watch {
            key,
            prefix,
            rev,
            count,
        } => watch(client, &key, prefix, rev, count, out).await?,
    }
    Ok(())
}

async fn watch(
    client: &DcsClient,
    key: &str,
    prefix: bool,
    rev: i64,
    count: Option<usize>,
    out: Output,
) -> anyhow::Result<()> {
    let mut rx = client.watch(key.as_bytes(), prefix, rev);
    let mut seen = 0usize;
    while let Some(msg) = rx.recv().await {
        match msg {
            WatchMessage::Events(events) => {
                for e in &events {
                    let j = event_json(e);
                    match out {
                        Output::Json => println!("{}", serde_json::to_string(&j)?),
                        Output::Table => println!(
                            "{} {} {} (revision {})",
                            j.kind, j.kv.key, j.kv.value, j.kv.mod_revision
                        ),
                    }
                    seen += 1;
                    if count.is_some_and(|c| seen >= c) {
                        return Ok(());
                    }
                }
            }
            WatchMessage::Compacted { revision } => {
                bail!("revision {rev} is compacted (history starts after {revision}): re-read and watch from a newer revision")
            }
        }
    }
    Ok(())
}
