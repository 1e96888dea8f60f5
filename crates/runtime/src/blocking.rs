//! Blocking work inside async runtimes: a start forks, writes cgroup files and fsyncs its
//! state; done on a Tokio worker, it held that worker (two on two cores) for the whole
//! fsync, so a burst of starts ran two at a time and the agent's heartbeats waited behind
//! them. On the multi-threaded runtime the work gets its own thread and the worker's other
//! tasks move on; on a current-thread runtime (unit tests) it runs in place.
//!
//! A few at a time: each one away from the workers is a thread of its own, and a burst of a
//! thousand starts made the agent five hundred threads (tokio's blocking cap), whose stacks
//! every later fork had to copy (a start's fork cost three times what it did with three
//! threads). The disk and the forks are no faster with more of them in flight.

use std::sync::LazyLock;
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::Semaphore;

/// Blocking works in flight at once, per process.
fn in_flight() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get() * 2)
}

static TURNS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(in_flight()));

pub(crate) async fn off_the_workers<R>(work: impl FnOnce() -> R) -> R {
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            // Never closed; were it, the work would still run, only without its turn.
            let _turn = TURNS.acquire().await;
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
                off_the_workers(move || rx.recv_timeout(Duration::from_secs(10))).await
            })
            .await
            .unwrap()
        });
        assert_eq!(answered, Ok(()));
    }

    #[tokio::test]
    async fn on_a_current_thread_runtime_it_runs_in_place() {
        assert_eq!(off_the_workers(|| 7).await, 7);
    }

    /// Many at once take turns: never more of them in flight than the bound.
    #[test]
    fn only_a_few_run_at_once() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        runtime.block_on(async {
            let works: Vec<_> = (0..64)
                .map(|_| {
                    let (now, most) = (now.clone(), most.clone());
                    tokio::spawn(async move {
                        off_the_workers(|| {
                            let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(running, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(2));
                            now.fetch_sub(1, Ordering::SeqCst);
                        })
                        .await
                    })
                })
                .collect();
            for work in works {
                work.await.unwrap();
            }
        });
        let most = most.load(Ordering::SeqCst);
        assert!(
            (1..=in_flight()).contains(&most),
            "{most} in flight at once"
        );
    }
}
