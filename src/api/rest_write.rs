//! The REST API's writes with Patroni's request and response shapes (`POST /switchover`, `/failover`, `/restart`,
//! `/reload`, `/reinitialize`, `PATCH|PUT /config`, `DELETE /switchover`). Each one runs the operation `pgha ctl` runs (src/ctl), through a
//! DCS client acting for the admin who called (`DcsClient::acting_for`): the DCS authorizes and records the admin,
//! not this node. Authorization of the caller happens before (rest.rs, `authz::authorize` with `Rpc::RestWrite`).

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::rest::SharedSnapshot;
use crate::cluster::keys::Keys;
use crate::cluster::model::NodeCommand;
use crate::cluster::store::Store;
use crate::ctl::switchover::{self, SwitchoverError};
use crate::dcs::authz::rest::RestWrite;
use crate::dcs::authz::Principal;
use crate::dcs::client::DcsClient;

/// How long `POST /switchover` waits for the new leader before answering 503 (Patroni waits about 20 s; a pgha
/// switchover takes well under that, this leaves room for a slow checkpoint).
const SWITCHOVER_WAIT: Duration = Duration::from_secs(60);

/// What the REST writes of one db node need.
pub struct Writes {
    pub cluster: String,
    /// This node: `/restart`, `/reload` and `/reinitialize` act on it, as in Patroni.
    pub name: String,
    /// The node's own DCS client; each write uses a copy acting for its caller.
    pub dcs: Arc<DcsClient>,
    pub snapshot: SharedSnapshot,
}

/// An answer: status and body (text as Patroni writes it, or JSON for the config).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Body,
}

#[derive(Debug)]
pub enum Body {
    Text(String),
    Json(Value),
}

fn text(status: StatusCode, body: impl Into<String>) -> Answer {
    Answer {
        status,
        body: Body::Text(body.into()),
    }
}

/// The request body as a JSON object (Patroni: a required body must be a non-empty object; 400 otherwise).
pub fn json_body(body: &[u8], optional: bool) -> Result<Map<String, Value>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return if optional {
            Ok(Map::new())
        } else {
            Err("a JSON object is required as the request body".into())
        };
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) if !m.is_empty() || optional => Ok(m),
        Ok(_) => Err("the request body must be a non-empty JSON object".into()),
        Err(e) => Err(format!("the request body is not valid JSON: {e}")),
    }
}

fn str_field<'a>(req: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    req.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Carries out `write` for `caller`.
pub async fn perform(w: &Writes, write: RestWrite, caller: &Principal, body: &[u8]) -> Answer {
    let dcs = match w.dcs.acting_for(caller) {
        Ok(d) => d,
        Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, format!("no DCS client: {e}")),
    };
    let optional = matches!(
        write,
        RestWrite::Restart | RestWrite::Reload | RestWrite::Reinitialize | RestWrite::CancelSwitchover
    );
    let req = match json_body(body, optional) {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    match write {
        RestWrite::Switchover => handover(w, &dcs, &req, false).await,
        RestWrite::Failover => handover(w, &dcs, &req, true).await,
        RestWrite::CancelSwitchover => cancel_switchover(w, &dcs).await,
        RestWrite::Restart => restart(w, &dcs, &req).await,
        RestWrite::Reload => match store_command(w, &dcs, NodeCommand::Reload).await {
            Ok(()) => text(StatusCode::ACCEPTED, "reload scheduled"),
            Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("reload failed: {e:#}")),
        },
        RestWrite::Reinitialize => reinitialize(w, &dcs).await,
        RestWrite::PatchConfig | RestWrite::PutConfig => config(w, &dcs, &req, write == RestWrite::PutConfig).await,
    }
}

async fn store_command(w: &Writes, dcs: &DcsClient, command: NodeCommand) -> anyhow::Result<()> {
    let keys = Keys::new(&w.cluster);
    Ok(Store { dcs, keys: &keys }.send_command(&w.name, &command).await?)
}

/// `POST /switchover` and `POST /failover`: Patroni's checks of the request, then ctl's plan, submit and wait.
async fn handover(w: &Writes, dcs: &DcsClient, req: &Map<String, Value>, failover: bool) -> Answer {
    let leader = str_field(req, "leader");
    let candidate = str_field(req, "candidate").or_else(|| str_field(req, "member"));
    let scheduled = str_field(req, "scheduled_at");
    let bad = |m: &str| text(StatusCode::BAD_REQUEST, m);
    if failover && candidate.is_none() {
        return bad("Failover could be performed only to a specific candidate");
    }
    if !failover && leader.is_none() {
        return bad("Switchover could be performed only from a specific leader");
    }
    if failover && scheduled.is_some() {
        return bad("Failover can't be scheduled");
    }
    // Patroni: a failover naming the leader is a switchover.
    let failover = failover && leader.is_none();
    if leader.is_some() && leader == candidate {
        return bad("Switchover target and source are the same");
    }
    let action = if failover { "Failover" } else { "Switchover" };
    let request = switchover::Request {
        leader,
        candidate,
        scheduled,
        force: true,
        failover,
    };
    let planned = match switchover::plan(dcs, &w.cluster, &request).await {
        Ok(p) => p,
        Err(e) => return handover_refused(e),
    };
    if let Err(e) = switchover::submit(dcs, &w.cluster, &planned).await {
        return handover_refused(e);
    }
    if planned.scheduled_unix_ms.is_some() {
        return text(StatusCode::ACCEPTED, format!("{action} scheduled"));
    }
    match switchover::wait_for_leader(dcs, &w.cluster, &planned.candidate, SWITCHOVER_WAIT, None).await {
        Ok(Some(_)) => {
            let verb = if failover { "failed" } else { "switched" };
            text(
                StatusCode::OK,
                format!("Successfully {verb} over to \"{}\"", planned.candidate),
            )
        }
        Ok(None) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{action} status unknown after {} seconds; operation may still be in progress",
                SWITCHOVER_WAIT.as_secs()
            ),
        ),
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{action} status unknown: {e}")),
    }
}

/// `DELETE /switchover`: drops a scheduled request (as `ctl switchover --cancel`); 404 when none is scheduled.
async fn cancel_switchover(w: &Writes, dcs: &DcsClient) -> Answer {
    let keys = Keys::new(&w.cluster);
    let store = Store { dcs, keys: &keys };
    let scheduled = match store.view().await {
        Ok(view) => view.switchover.is_some_and(|s| s.scheduled_unix_ms.is_some()),
        Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}")),
    };
    if !scheduled {
        return text(StatusCode::NOT_FOUND, "no switchover is scheduled");
    }
    match store.delete_switchover().await {
        Ok(n) if n > 0 => text(StatusCode::OK, "scheduled switchover deleted"),
        Ok(_) => text(StatusCode::NOT_FOUND, "no switchover is scheduled"),
        Err(e) => text(StatusCode::CONFLICT, format!("{e}")),
    }
}

/// Patroni's status codes for a refused switchover.
fn handover_refused(e: SwitchoverError) -> Answer {
    let status = match &e {
        SwitchoverError::Invalid(_) | SwitchoverError::Precondition(_) => StatusCode::PRECONDITION_FAILED,
        SwitchoverError::BadSchedule(_) => StatusCode::UNPROCESSABLE_ENTITY,
        SwitchoverError::Pending | SwitchoverError::Dcs(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    text(status, e.to_string())
}

/// `POST /restart` with Patroni's filters: `role`, `restart_pending`, `timeout`; a schedule is not supported.
async fn restart(w: &Writes, dcs: &DcsClient, req: &Map<String, Value>) -> Answer {
    let mut role = None;
    let mut pending_only = false;
    let mut limit = crate::ctl::node_cmd::WAIT;
    for (key, value) in req {
        match key.as_str() {
            "role" => match value.as_str() {
                Some(r @ ("primary" | "replica" | "standby_leader" | "master")) => role = Some(r.to_string()),
                _ => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        "PostgreSQL role should be either primary, standby_leader, or replica",
                    )
                }
            },
            "restart_pending" => pending_only = value.as_bool().unwrap_or(false),
            "timeout" => match value.as_u64().or_else(|| value.as_str().and_then(|t| t.parse().ok())) {
                Some(s) if s > 0 => limit = Duration::from_secs(s),
                _ => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        "Timeout should be a positive number of seconds",
                    )
                }
            },
            "schedule" => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "scheduled restarts are not supported by pgha: restart at the time you want",
                )
            }
            other => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("Unknown filter for the scheduled restart: {other}"),
                )
            }
        }
    }
    let snap = w.snapshot.read().ok().and_then(|s| s.clone());
    let is_primary = snap
        .as_ref()
        .is_some_and(|s| s.holds_leader && s.status.as_ref().is_some_and(|st| !st.in_recovery));
    let pending = snap
        .as_ref()
        .and_then(|s| s.view.members.get(&s.name))
        .is_some_and(|m| m.pending_restart);
    let role_matches = match role.as_deref() {
        None => true,
        Some("primary" | "master") => is_primary,
        Some("replica") => !is_primary,
        Some(_) => false, // standby_leader: pgha has no standby clusters
    };
    if !role_matches || (pending_only && !pending) {
        return text(StatusCode::SERVICE_UNAVAILABLE, "restart conditions are not satisfied");
    }
    let command = NodeCommand::Restart { pending_only };
    let names = [w.name.clone()];
    match crate::ctl::node_cmd::deliver(dcs, &w.cluster, &names, command, limit, &mut |_| {}).await {
        Ok(()) => text(StatusCode::OK, "restarted successfully"),
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("restart failed: {e:#}")),
    }
}

/// `POST /reinitialize`: refused on the leader and without one (as ctl); `force` and `from_leader` are accepted
/// (pgha always clones from the leader).
async fn reinitialize(w: &Writes, dcs: &DcsClient) -> Answer {
    let view = match crate::ctl::node_cmd::view(dcs, &w.cluster).await {
        Ok(v) => v,
        Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    };
    if let Err(e) = crate::ctl::node_cmd::check_reinit(&view, &w.name) {
        return text(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}"));
    }
    match store_command(w, dcs, NodeCommand::Reinit).await {
        Ok(()) => text(StatusCode::OK, "reinitialize started"),
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    }
}

/// `PATCH /config` (merge) and `PUT /config` (replace): validated as `edit-config` does, stored with a
/// compare-and-swap on the revision read (409 when it changed meanwhile); the answer is the stored config.
async fn config(w: &Writes, dcs: &DcsClient, req: &Map<String, Value>, replace: bool) -> Answer {
    use crate::ctl::config_cmd;
    let keys = Keys::new(&w.cluster);
    let (current, revision) = match config_cmd::read(dcs, &keys).await {
        Ok(c) => c,
        Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    };
    let wanted = if replace {
        super::patroni_config::replace(req)
    } else {
        super::patroni_config::patch(&current, req)
    };
    let wanted = match wanted.and_then(|c| config_cmd::validate(c).map_err(|e| format!("{e:#}"))) {
        Ok(c) => c,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    if wanted != current {
        match config_cmd::write(dcs, &keys, &wanted, revision).await {
            Ok(true) => {}
            Ok(false) => {
                return text(
                    StatusCode::CONFLICT,
                    "the dynamic configuration was changed by someone else meanwhile: nothing was written",
                )
            }
            Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
        }
    }
    Answer {
        status: StatusCode::OK,
        body: Body::Json(serde_json::to_value(&wanted).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_table() {
        // (body, optional, ok)
        let cases: [(&[u8], bool, bool); 8] = [
            (b"", true, true),
            (b"", false, false),
            (b"  \n", true, true),
            (b"{}", true, true),
            (b"{}", false, false),
            (br#"{"leader":"db1","candidate":"db2"}"#, false, true),
            (b"[1]", true, false),
            (b"{nope", true, false),
        ];
        for (body, optional, ok) in cases {
            assert_eq!(
                json_body(body, optional).is_ok(),
                ok,
                "{:?} optional={optional}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
