//! Session workers: each a single-threaded tokio runtime on its own thread, sessions handed out round-robin at
//! accept, so a session's two sockets, its wake-ups and its buffers stay on one thread (no work stealing, no
//! cross-thread wake-up per packet) while the accept loops, DCS follower and status page stay on the main runtime.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// Stack of a worker thread (Rust's default; only the pages touched are resident).
const STACK: usize = 2 * 1024 * 1024;

/// How many workers `edge.session_threads` asks for: 0 means one per core the process may run on.
pub fn worker_count(configured: usize, cores: usize) -> usize {
    match configured {
        0 => cores.max(1),
        n => n,
    }
}

/// Running workers; dropping them stops the threads (tasks still on them are dropped, closing their sockets).
pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    stop: CancellationToken,
    /// Kept for the threads' names in a debugger; never joined (see Drop).
    _threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts `n` worker threads (at least one), each running its own current-thread runtime with I/O and timers.
    pub fn start(n: usize) -> std::io::Result<Workers> {
        let stop = CancellationToken::new();
        let mut handles = Vec::new();
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            handles.push(runtime.handle().clone());
            let token = stop.clone();
            let thread = std::thread::Builder::new()
                .name(format!("pgha-session-{i}"))
                .stack_size(STACK)
                .spawn(move || runtime.block_on(token.cancelled()))?;
            threads.push(thread);
        }
        Ok(Workers {
            handles,
            next: AtomicUsize::new(0),
            stop,
            _threads: threads,
        })
    }

    /// Runs `task` on the next worker (round-robin).
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        drop(self.handles[i].spawn(task));
    }

    /// How many workers run.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Never true: at least one worker runs.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Not joined: the last owner may be a task on a worker itself. Each worker drops its own runtime on exit.
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_one_per_core() {
        for (configured, cores, want) in [(0, 2, 2), (0, 0, 1), (1, 8, 1), (3, 2, 3)] {
            assert_eq!(worker_count(configured, cores), want, "{configured} on {cores} cores");
        }
    }

    #[test]
    fn tasks_run_round_robin_on_their_own_threads() {
        let workers = Workers::start(2).expect("start workers");
        assert_eq!(workers.len(), 2);
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..4 {
            let tx = tx.clone();
            workers.spawn(async move {
                // Timers and I/O work on a worker.
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                drop(listener);
                let name = std::thread::current().name().map(str::to_string);
                tx.send(name).expect("send");
            });
        }
        let mut names: Vec<Option<String>> = (0..4)
            .map(|_| rx.recv_timeout(std::time::Duration::from_secs(10)).expect("a task ran"))
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                Some("pgha-session-0".to_string()),
                Some("pgha-session-0".to_string()),
                Some("pgha-session-1".to_string()),
                Some("pgha-session-1".to_string())
            ]
        );
    }
}
