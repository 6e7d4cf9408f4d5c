//! Running hook processes, the shell of `hooks.rs`: `on_*` callbacks in the background (never awaited by the HA
//! loop), one at a time per slot, each killed at `callback_timeout_ms` or when the next one starts (Patroni's
//! CallbackExecutor; `on_reload` has its own slot, as Patroni's OnReloadExecutor); `pre_promote` awaited with its
//! timeout. Output lines go to the log with the hook's name, the end once.
//!
//! Hazards: every hook runs in its own process group and is killed by that group's id (its PID), never by name, so a
//! script's children (`sleep`, a pipeline) go with it and cannot keep its output pipes open; what is left of the group
//! when the script itself exits is killed at once, as Patroni kills a callback's children. A script that escapes its
//! group (setsid, a double fork into a new group) is beyond reach; its output is read at most [`DRAIN`] after the end.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::hooks::{HookAction, HookEnd, HookRole, HookSettings};

/// How long the output of an ended hook is still read (a grandchild that left its group may hold the pipe).
const DRAIN: Duration = Duration::from_secs(1);

/// A hook process and the tasks logging its output.
struct Running {
    action: HookAction,
    child: Child,
    /// The child's PID, which is also its process group's id.
    pgid: Option<i32>,
    started: Instant,
    deadline: Instant,
    readers: Vec<JoinHandle<()>>,
}

impl Running {
    fn spawn(s: &HookSettings, action: HookAction, role: HookRole, timeout: Duration) -> Result<Running, HookEnd> {
        let argv = s
            .argv(action, role)
            .ok_or_else(|| HookEnd::SpawnFailed("not configured".into()))?;
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| HookEnd::SpawnFailed("empty command".into()))?;
        let mut child = Command::new(program)
            .args(args)
            .envs(s.env(action, role))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| HookEnd::SpawnFailed(format!("{program}: {e}")))?;
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(log_lines(out, action, "stdout")));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(log_lines(err, action, "stderr")));
        }
        let started = Instant::now();
        Ok(Running {
            action,
            pgid: child.id().and_then(|p| i32::try_from(p).ok()),
            child,
            started,
            deadline: started + timeout,
            readers,
        })
    }

    /// Waits for the end (killing the process group at the deadline), then for the output.
    async fn wait(&mut self) -> HookEnd {
        let end = match tokio::time::timeout_at(self.deadline.into(), self.child.wait()).await {
            Ok(Ok(status)) => {
                self.kill_group();
                exit_end(status)
            }
            Ok(Err(e)) => {
                self.kill_group();
                HookEnd::SpawnFailed(format!("waiting for it failed: {e}"))
            }
            Err(_) => {
                self.kill().await;
                HookEnd::TimedOut
            }
        };
        self.drain().await;
        end
    }

    /// Kills the process group and reaps the child.
    async fn kill(&mut self) {
        self.kill_group();
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    fn kill_group(&self) {
        if let Some(pgid) = self.pgid.filter(|p| *p > 1) {
            // SAFETY: kill has no memory-safety preconditions; a negative id names the hook's own process group.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }

    async fn drain(&mut self) {
        for reader in self.readers.drain(..) {
            let abort = reader.abort_handle();
            if tokio::time::timeout(DRAIN, reader).await.is_err() {
                abort.abort();
            }
        }
    }
}

fn exit_end(status: std::process::ExitStatus) -> HookEnd {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => HookEnd::Exited(code),
        (None, Some(sig)) => HookEnd::Signalled(sig),
        (None, None) => HookEnd::Exited(-1),
    }
}

/// Logs every line of a hook's output stream (lossy UTF-8; at most 64 KiB a line).
async fn log_lines(stream: impl AsyncRead + Unpin, action: HookAction, name: &'static str) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader).take(64 * 1024).read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']);
                tracing::info!(event = "hook_output", hook = action.as_str(), stream = name, "{line}");
            }
        }
    }
}

/// Logs how a callback ended: one line, `hook_done` or `hook_failed`.
fn log_end(action: HookAction, end: &HookEnd, started: Instant) {
    let ms = started.elapsed().as_millis() as u64;
    if end.succeeded() {
        tracing::info!(
            event = "hook_done",
            hook = action.as_str(),
            ms,
            "{} {end}",
            action.as_str()
        );
    } else {
        tracing::warn!(
            event = "hook_failed",
            hook = action.as_str(),
            ms,
            "{} {end}",
            action.as_str()
        );
    }
}

/// Runs `pre_promote` (or any hook) to its end or its timeout, logging its output; the caller logs the verdict.
pub async fn run_to_end(s: &HookSettings, action: HookAction, role: HookRole, timeout: Duration) -> HookEnd {
    match Running::spawn(s, action, role, timeout) {
        Ok(mut running) => running.wait().await,
        Err(end) => end,
    }
}

/// A callback request: which hook, for which role.
#[derive(Clone, Copy, Debug)]
struct Request {
    action: HookAction,
    role: HookRole,
}

/// One callback at a time: a new request kills the one still running.
struct Slot {
    tx: mpsc::UnboundedSender<Request>,
    task: JoinHandle<()>,
}

impl Slot {
    fn spawn(settings: Arc<HookSettings>) -> Slot {
        let (tx, rx) = mpsc::unbounded_channel();
        Slot {
            tx,
            task: tokio::spawn(executor(settings, rx)),
        }
    }
}

async fn executor(s: Arc<HookSettings>, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut current: Option<Running> = None;
    loop {
        tokio::select! {
            req = rx.recv() => {
                let Some(req) = req else {
                    // Shutdown: the running callback may end, within its own timeout.
                    if let Some(mut last) = current.take() {
                        let end = last.wait().await;
                        log_end(last.action, &end, last.started);
                    }
                    return;
                };
                if let Some(mut old) = current.take() {
                    let next = req.action.as_str();
                    old.kill().await;
                    old.drain().await;
                    tracing::warn!(
                        event = "hook_failed",
                        hook = old.action.as_str(),
                        ms = old.started.elapsed().as_millis() as u64,
                        "{} killed: still running when {next} fired",
                        old.action.as_str()
                    );
                }
                match Running::spawn(&s, req.action, req.role, s.callback_timeout) {
                    Ok(running) => current = Some(running),
                    Err(end) => log_end(req.action, &end, Instant::now()),
                }
            }
            end = wait_current(&mut current) => {
                if let Some(done) = current.take() {
                    log_end(done.action, &end, done.started);
                }
            }
        }
    }
}

/// The end of the running callback; never resolves when there is none.
async fn wait_current(current: &mut Option<Running>) -> HookEnd {
    match current {
        Some(running) => running.wait().await,
        None => std::future::pending().await,
    }
}

/// The node's `on_*` callbacks: fired without waiting, run in the background.
pub struct Callbacks {
    settings: Arc<HookSettings>,
    /// Every callback but `on_reload`.
    main: Option<Slot>,
    /// `on_reload` (a reload does not kill the other callbacks).
    reload: Option<Slot>,
}

impl Callbacks {
    /// The executors (tasks) exist only when a callback is configured. Needs a Tokio runtime.
    pub fn new(settings: Arc<HookSettings>) -> Callbacks {
        let main = settings.any_callback().then(|| Slot::spawn(settings.clone()));
        let reload = settings.on_reload.is_some().then(|| Slot::spawn(settings.clone()));
        Callbacks { settings, main, reload }
    }

    /// Starts `action`'s callback for `role` in the background, if configured; never waits.
    pub fn fire(&self, action: HookAction, role: HookRole) {
        if self.settings.command(action).is_none() {
            return;
        }
        let slot = match action {
            HookAction::OnReload => &self.reload,
            _ => &self.main,
        };
        if let Some(slot) = slot {
            // A closed channel means the executor is gone (shutdown): nothing to run it.
            let _ = slot.tx.send(Request { action, role });
        }
    }

    /// Lets the running callbacks end (each within its own timeout), then stops the executors.
    pub async fn finish(&mut self) {
        let bound = self.settings.callback_timeout + 2 * DRAIN;
        for slot in [self.main.take(), self.reload.take()].into_iter().flatten() {
            let Slot { tx, task } = slot;
            drop(tx);
            let abort = task.abort_handle();
            if tokio::time::timeout(bound, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Option<Vec<String>> {
        Some(vec!["/bin/sh".into(), "-c".into(), script.into(), "hook".into()])
    }

    fn settings() -> HookSettings {
        HookSettings {
            callback_timeout: Duration::from_secs(5),
            pre_promote_timeout: Duration::from_secs(5),
            cluster: "demo".into(),
            node: "db1".into(),
            ..HookSettings::default()
        }
    }

    #[tokio::test]
    async fn pre_promote_ends() {
        let mut s = settings();
        let short = Duration::from_millis(300);
        let cases = [
            ("exit 0", sh("exit 0"), HookEnd::Exited(0)),
            ("exit 1", sh("echo vetoing; exit 1"), HookEnd::Exited(1)),
            (
                "env",
                sh("test \"$PGHA_HOOK $PGHA_NODE $#\" = 'pre_promote db1 0'"),
                HookEnd::Exited(0),
            ),
            ("timeout", sh("sleep 30"), HookEnd::TimedOut),
        ];
        for (case, cmd, expected) in cases {
            s.pre_promote = cmd;
            let started = Instant::now();
            let end = run_to_end(&s, HookAction::PrePromote, HookRole::Primary, short).await;
            assert_eq!(end, expected, "{case}");
            // The killed `sleep` (the script's child) must not hold the output pipe open.
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "{case}: {:?}",
                started.elapsed()
            );
        }
        s.pre_promote = Some(vec!["/nonexistent/hook".into()]);
        let end = run_to_end(&s, HookAction::PrePromote, HookRole::Primary, short).await;
        assert!(matches!(end, HookEnd::SpawnFailed(_)), "{end:?}");
    }

    async fn wait_for(log: &std::path::Path, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(log).unwrap_or_default().contains(needle) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_new_callback_kills_the_running_one_and_timeouts_kill() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("calls");
        let mut s = settings();
        s.callback_timeout = Duration::from_millis(500);
        // Records its arguments; on_stop then sleeps until killed (by on_role_change or its timeout).
        let script = format!(
            "echo \"$*\" >> {log}; if [ \"$1\" = on_stop ]; then sleep 30; echo survived >> {log}; fi",
            log = log.display()
        );
        s.on_stop = sh(&script);
        s.on_role_change = sh(&script);
        let mut callbacks = Callbacks::new(Arc::new(s));
        callbacks.fire(HookAction::OnStart, HookRole::Primary); // not configured: nothing
        callbacks.fire(HookAction::OnStop, HookRole::Primary);
        let calls = || std::fs::read_to_string(&log).unwrap_or_default();
        wait_for(&log, "on_stop").await;
        callbacks.fire(HookAction::OnRoleChange, HookRole::Replica);
        wait_for(&log, "on_role_change").await;
        // A callback left running is killed at its timeout.
        callbacks.fire(HookAction::OnStop, HookRole::Replica);
        let started = Instant::now();
        callbacks.finish().await;
        assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
        assert_eq!(
            calls(),
            "on_stop primary demo\non_role_change replica demo\non_stop replica demo\n"
        );
    }
}
