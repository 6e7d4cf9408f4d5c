//! Runs a replica creation or restore command under the stall rule ([`super::clone_progress`]): its output
//! lines and the data directory's growth are its progress; a stalled one is killed (its whole process group).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use super::clone_progress::{bytes_text, log_due, Sample, StallWatch, Verdict};
use super::os;
use super::PgError;
use crate::postgres::clone_progress::CloneProgress;

/// Output lines kept for the error of a failed method.
const KEPT_LINES: usize = 15;
/// How long the output readers may take after the command exited.
const DRAIN: Duration = Duration::from_secs(1);

/// The output seen so far.
#[derive(Default)]
struct Output {
    lines: u64,
    last: VecDeque<String>,
}

async fn read_lines(stream: impl AsyncRead + Unpin, out: Arc<Mutex<Output>>, method: String) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(event = "clone_output", method = %method, "{line}");
        if let Ok(mut o) = out.lock() {
            o.lines += 1;
            if o.last.len() == KEPT_LINES {
                o.last.pop_front();
            }
            o.last.push_back(line);
        }
    }
}

/// Bytes of the regular files under `dir` (symlinks not followed; unreadable entries count 0).
pub(crate) fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) if m.is_file() => total += m.len(),
                _ => {}
            }
        }
    }
    total
}

fn kill_group(pgid: Option<u32>) {
    if let Some(pgid) = pgid.and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 1) {
        // SAFETY: kill has no memory-safety preconditions; a negative id names the command's own process group.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Runs `cmd` (a method `method` filling `data_dir`) to its end, killing it after `stall` without progress.
/// Every sample goes to `progress` (the member key publishes it; None again at the end). Logs the data directory's
/// size every ~10 s while it grows (`event = "clone_progress"`) and a stall with its reason (`event = "clone_stalled"`).
pub(crate) async fn run_watched(
    step: &'static str,
    method: &str,
    cmd: Command,
    data_dir: &Path,
    stall: Duration,
    progress: &tokio::sync::watch::Sender<Option<CloneProgress>>,
) -> Result<(), PgError> {
    let result = run_sampled(step, method, cmd, data_dir, stall, progress).await;
    progress.send_replace(None);
    result
}

async fn run_sampled(
    step: &'static str,
    method: &str,
    mut cmd: Command,
    data_dir: &Path,
    stall: Duration,
    progress: &tokio::sync::watch::Sender<Option<CloneProgress>>,
) -> Result<(), PgError> {
    let shown = os::display(&cmd);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let program = PathBuf::from(cmd.as_std().get_program());
    let mut child = cmd.spawn().map_err(PgError::io(step, program))?;
    let pgid = child.id();
    let out = Arc::new(Mutex::new(Output::default()));
    let mut readers = Vec::new();
    if let Some(s) = child.stdout.take() {
        readers.push(tokio::spawn(read_lines(s, out.clone(), method.to_string())));
    }
    if let Some(s) = child.stderr.take() {
        readers.push(tokio::spawn(read_lines(s, out.clone(), method.to_string())));
    }
    let started = Instant::now();
    let mut watch = StallWatch::new(stall);
    let mut logged = None;
    let mut tick = tokio::time::interval((stall / 4).clamp(Duration::from_millis(100), Duration::from_secs(5)));
    let tail = |out: &Arc<Mutex<Output>>| {
        out.lock()
            .map(|o| o.last.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    };
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.map_err(PgError::io(step, PathBuf::from(&shown)))?,
            _ = tick.tick() => {
                let dir = data_dir.to_path_buf();
                let bytes = tokio::task::spawn_blocking(move || dir_size(&dir)).await.unwrap_or(0);
                let lines = out.lock().map(|o| o.lines).unwrap_or(0);
                let at = started.elapsed();
                progress.send_replace(Some(CloneProgress { method: method.to_string(), bytes, elapsed_s: at.as_secs() }));
                match watch.observe(Sample { at, bytes, lines }) {
                    Verdict::Continue { progressed } => {
                        if progressed && log_due(logged, at) {
                            logged = Some(at);
                            tracing::info!(
                                event = "clone_progress", method, bytes, elapsed_s = at.as_secs(),
                                "creating the data directory ({method}): {}, {} s", bytes_text(bytes), at.as_secs()
                            );
                        }
                    }
                    Verdict::Abort(reason) => {
                        tracing::warn!(event = "clone_stalled", method, reason = %reason, "{method} stalled: killed");
                        kill_group(pgid);
                        let _ = child.start_kill();
                        let _ = child.wait().await;
                        for r in readers {
                            r.abort();
                        }
                        return Err(PgError::Stalled { step, command: shown, reason, output: tail(&out) });
                    }
                }
            }
        }
    };
    // Whatever the command left running in its group must not outlive it.
    kill_group(pgid);
    for r in readers {
        let abort = r.abort_handle();
        if tokio::time::timeout(DRAIN, r).await.is_err() {
            abort.abort();
        }
    }
    if !status.success() {
        return Err(PgError::Command {
            step,
            command: shown,
            status: status.to_string(),
            output: tail(&out),
            log: String::new(),
        });
    }
    Ok(())
}
