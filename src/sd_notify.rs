//! systemd readiness (`Type=notify`): one datagram to `$NOTIFY_SOCKET`, no daemon crate; a no-op outside systemd.

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Why a notification could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET {0:?} is neither an absolute path nor an abstract socket name ('@...')")]
    BadAddress(String),
    #[error("sending {state:?} to NOTIFY_SOCKET {socket:?}: {source}")]
    Send {
        state: String,
        socket: String,
        source: std::io::Error,
    },
}

/// Where `$NOTIFY_SOCKET` points: a filesystem socket or a Linux abstract one.
#[derive(Debug, PartialEq, Eq)]
pub enum NotifyTarget {
    Path(String),
    Abstract(String),
}

/// Parses `$NOTIFY_SOCKET` as systemd sets it: `/run/systemd/notify` or `@name` (abstract namespace).
pub fn parse_target(value: &str) -> Result<NotifyTarget, NotifyError> {
    if let Some(name) = value.strip_prefix('@').filter(|n| !n.is_empty()) {
        Ok(NotifyTarget::Abstract(name.to_string()))
    } else if value.starts_with('/') {
        Ok(NotifyTarget::Path(value.to_string()))
    } else {
        Err(NotifyError::BadAddress(value.to_string()))
    }
}

/// Sends `state` (e.g. "READY=1") to `$NOTIFY_SOCKET`; `Ok(false)` when the variable is unset (not under systemd).
pub fn notify(state: &str) -> Result<bool, NotifyError> {
    let Some(raw) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let raw = raw.to_string_lossy().into_owned();
    let send_err = |source| NotifyError::Send {
        state: state.to_string(),
        socket: raw.clone(),
        source,
    };
    let addr = match parse_target(&raw)? {
        NotifyTarget::Path(path) => SocketAddr::from_pathname(path).map_err(send_err)?,
        NotifyTarget::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes()).map_err(send_err)?
        }
    };
    let socket = UnixDatagram::unbound().map_err(send_err)?;
    socket.send_to_addr(state.as_bytes(), &addr).map_err(send_err)?;
    Ok(true)
}

/// Tells systemd the service is up (`READY=1`, with a status line); failures are logged, never fatal.
pub fn ready(status: &str) {
    send_logged(&format!("READY=1\nSTATUS={status}"));
}

/// Tells systemd a clean stop has begun (`STOPPING=1`).
pub fn stopping() {
    send_logged("STOPPING=1\nSTATUS=stopping");
}

/// Tells systemd the service is no longer ready and is going down on its own after a failure (`STOPPING=1` with
/// `status` as its status line); the non-zero exit that follows makes `Restart=on-failure` start it again.
pub fn stopping_after_failure(status: &str) {
    send_logged(&failure_state(status));
}

/// The datagram for [`stopping_after_failure`]: STATUS= is one line, so newlines in `status` become spaces.
fn failure_state(status: &str) -> String {
    format!("STOPPING=1\nSTATUS={}", status.replace(['\r', '\n'], " "))
}

fn send_logged(state: &str) {
    match notify(state) {
        Ok(true) => tracing::debug!(state, "notified systemd"),
        Ok(false) => {}
        // A unit without NotifyAccess or a vanished socket must not take the node down: systemd will time the
        // start out on its own and say so.
        Err(e) => tracing::warn!("systemd notification failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_status_is_one_line() {
        assert_eq!(
            failure_state("DCS failed: append\nNo space left"),
            "STOPPING=1\nSTATUS=DCS failed: append No space left"
        );
    }

    #[test]
    fn targets() {
        let cases: &[(&str, Option<NotifyTarget>)] = &[
            (
                "/run/systemd/notify",
                Some(NotifyTarget::Path("/run/systemd/notify".into())),
            ),
            (
                "@/org/freedesktop/systemd1/notify/1",
                Some(NotifyTarget::Abstract("/org/freedesktop/systemd1/notify/1".into())),
            ),
            ("@", None),
            ("relative/socket", None),
            ("", None),
        ];
        for (input, want) in cases {
            match (parse_target(input), want) {
                (Ok(got), Some(want)) => assert_eq!(&got, want, "{input:?}"),
                (Err(NotifyError::BadAddress(v)), None) => assert_eq!(v, *input),
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
