//! Blocking work inside async runtimes: a start forks, writes cgroup files and fsyncs its
//! state; done on a Tokio worker, it held that worker (two on two cores) for the whole
//! fsync, so a burst of starts ran two at a time and the agent's heartbeats waited behind
//! them. On the multi-threaded runtime the work gets its own thread and the worker's other
//! tasks move on; on a current-thread runtime (unit tests) it runs in place.

use tokio::runtime::{Handle, RuntimeFlavor};

pub(crate) fn off_the_workers<R>(work: impl FnOnce() -> R) -> R {
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// One worker: the blocking work waits for a task spawned on that same worker, which
    /// can only run once the work has left the worker.
    #[test]
    fn blocking_work_leaves_its_worker_to_the_other_tasks() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let answered = runtime.block_on(async {
            tokio::spawn(async {
                let (tx, rx) = mpsc::channel();
                tokio::spawn(async move { tx.send(()).unwrap() });
                off_the_workers(|| rx.recv_timeout(Duration::from_secs(10)))
            })
            .await
            .unwrap()
        });
        assert_eq!(answered, Ok(()));
    }

    #[tokio::test]
    async fn on_a_current_thread_runtime_it_runs_in_place() {
        assert_eq!(off_the_workers(|| 7), 7);
    }
}
