//! The HAProxy side of `pgha bench proxy --haproxy`: a TCP-mode configuration as a tuned production HAProxy runs in
//! front of PostgreSQL (rendered by a pure function), and the process, started in the foreground and stopped by PID.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// Where Debian's package puts the binary; else it is looked up on PATH.
const DEBIAN_PATH: &str = "/usr/sbin/haproxy";
/// How long HAProxy may take to listen.
const READY: Duration = Duration::from_secs(10);

/// What the configuration needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaproxySettings {
    /// The port HAProxy listens on (127.0.0.1).
    pub listen_port: u16,
    /// The primary's `host:port`.
    pub backend: String,
    /// Threads (one per core, as HAProxy itself picks by default since 2.5; written out so the run says it).
    pub threads: usize,
    /// Connections at once (global and frontend).
    pub maxconn: usize,
}

/// The configuration: TCP mode, no logging (the edge logs nothing per session either), the accept/connect
/// optimisations a tuned deployment turns on (`tcp-smart-accept` delays the ACK of the client's first message,
/// `tcp-smart-connect` sends the first data with the connect's ACK, `splice-auto` moves bulk through kernel pipes),
/// TCP keep-alive both ways, and PostgreSQL-friendly timeouts (long client/server idle, 2 s connect as the edge's).
pub fn render_config(s: &HaproxySettings) -> String {
    format!(
        "global
    nbthread {threads}
    maxconn {maxconn}
    tune.bufsize 16384

defaults
    mode tcp
    no log
    option tcp-smart-accept
    option tcp-smart-connect
    option splice-auto
    option tcpka
    timeout connect 2s
    timeout client 30m
    timeout server 30m
    timeout client-fin 10s
    timeout server-fin 10s

frontend postgres
    bind 127.0.0.1:{port}
    maxconn {maxconn}
    default_backend primary

backend primary
    server primary {backend}
",
        threads = s.threads.max(1),
        maxconn = s.maxconn.max(1),
        port = s.listen_port,
        backend = s.backend,
    )
}

/// The haproxy binary, if installed.
pub fn find() -> Option<PathBuf> {
    let debian = Path::new(DEBIAN_PATH);
    if debian.exists() {
        return Some(debian.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("haproxy"))
            .find(|p| p.exists())
    })
}

/// A running HAProxy (foreground, one process); killed by its PID when dropped.
pub struct Haproxy {
    child: Child,
    port: u16,
    /// The directory with the configuration (removed on drop).
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// Checks the configuration (`haproxy -c`), starts HAProxy in the foreground (`-db`) and waits until it listens.
    pub async fn start(exe: &Path, settings: &HaproxySettings) -> anyhow::Result<Haproxy> {
        let dir = tempfile::Builder::new()
            .prefix("pgha-bench-haproxy")
            .tempdir()
            .context("creating HAProxy's directory")?;
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, render_config(settings)).with_context(|| format!("writing {}", cfg.display()))?;
        let check = Command::new(exe)
            .arg("-c")
            .arg("-f")
            .arg(&cfg)
            .output()
            .with_context(|| format!("running {} -c", exe.display()))?;
        anyhow::ensure!(
            check.status.success(),
            "HAProxy refused the generated configuration:\n{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new(exe)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let haproxy = Haproxy {
            child,
            port: settings.listen_port,
            _dir: dir,
        };
        let deadline = Instant::now() + READY;
        // Bounded by the deadline; each attempt is a loopback connect.
        while tokio::net::TcpStream::connect(("127.0.0.1", settings.listen_port))
            .await
            .is_err()
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "HAProxy did not listen on 127.0.0.1:{} within {READY:?}",
                settings.listen_port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(haproxy)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process's PID (for its RSS).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        // Only the process this bench started.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(threads: usize) -> HaproxySettings {
        HaproxySettings {
            listen_port: 15432,
            backend: "127.0.0.1:5432".into(),
            threads,
            maxconn: 1000,
        }
    }

    #[test]
    fn renders_a_tuned_tcp_proxy() {
        let cases: [(HaproxySettings, &[&str]); 3] = [
            (
                settings(2),
                &[
                    "nbthread 2\n",
                    "maxconn 1000\n",
                    "mode tcp\n",
                    "option tcp-smart-accept\n",
                    "option tcp-smart-connect\n",
                    "option splice-auto\n",
                    "timeout connect 2s\n",
                    "bind 127.0.0.1:15432\n",
                    "server primary 127.0.0.1:5432\n",
                ],
            ),
            (settings(8), &["nbthread 8\n"]),
            // Zero threads would be refused by HAProxy: one at least.
            (settings(0), &["nbthread 1\n"]),
        ];
        for (s, lines) in cases {
            let cfg = render_config(&s);
            for line in lines {
                assert!(cfg.contains(line), "{line:?} missing from\n{cfg}");
            }
        }
    }

    #[test]
    fn haproxy_accepts_the_configuration() {
        let Some(exe) = find() else {
            eprintln!("skipped: haproxy_accepts_the_configuration needs haproxy");
            return;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, render_config(&settings(2))).expect("write the configuration");
        let out = Command::new(exe)
            .arg("-c")
            .arg("-f")
            .arg(&cfg)
            .output()
            .expect("haproxy -c");
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
