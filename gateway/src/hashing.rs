//! Password hashing with a bound: the only expensive work an unauthenticated request can
//! cause (argon2id: ~19 MiB of memory and tens of milliseconds of CPU per login or
//! registration).
//!
//! Without a bound, a login flood queues thousands of hashes on tokio's blocking pool (up to
//! 512 threads, 19 MiB each) and starves the sale of CPU; a request's deadline does not stop
//! a hash that has started. So at most `auth.hash_concurrency` hashes run at once (half the
//! cores by default), at most `auth.hash_queue` requests wait for a slot, none longer than
//! `auth.hash_wait_ms`; everything beyond is refused at once with 503 `OVERLOADED` and
//! `Retry-After`. A login takes its slot before it asks MySQL for the user, so a flood is
//! refused before it reaches the database pool that pay and cancel need. The slot travels
//! with the hash into the blocking thread, so a request that gives up (deadline, client gone)
//! still holds it until its hash really ends: the bound is on work done, not on requests
//! waiting.
//!
//! The hashes run on threads of their own (one per slot) at a lower CPU priority (nice 10 on
//! Linux): when a login flood and the sale compete for a core, the sale's threads win it.

use crate::error::ApiError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One hash to run, with the slot it holds (released when the job is done or dropped).
type Job = Box<dyn FnOnce() + Send>;

pub(crate) struct PasswordWork {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_wait: Duration,
    /// The hashing threads' queue (never longer than the number of slots).
    jobs: mpsc::Sender<Job>,
}

/// Lowers the calling thread's CPU priority (Linux: `nice` is per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread's own id; no memory is shared.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// `n` threads running jobs from one queue until the sender is dropped.
fn hashing_threads(n: usize) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..n {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("password-hash-{i}"))
            .spawn(move || {
                lower_priority();
                loop {
                    let job = match rx.lock() {
                        Ok(q) => q.recv(),
                        Err(poisoned) => poisoned.into_inner().recv(),
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start a password hashing thread");
        }
    }
    tx
}

/// Counts a waiter while it exists (also when its request is dropped mid-wait).
struct Waiter<'a>(&'a AtomicUsize);

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PasswordWork {
    pub(crate) fn new(slots: usize, max_waiting: usize, max_wait: Duration) -> Self {
        let slots = slots.max(1);
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            waiting: AtomicUsize::new(0),
            max_waiting,
            max_wait,
            jobs: hashing_threads(slots),
        }
    }

    /// Whether a request would be refused now (every slot busy, the queue full): the routes
    /// answer such a flood before reading its bodies.
    pub(crate) fn saturated(&self) -> bool {
        self.slots.available_permits() == 0
            && self.waiting.load(Ordering::Relaxed) >= self.max_waiting
    }

    /// A hashing slot once one is free, or a refusal.
    pub(crate) async fn slot(&self) -> Result<HashSlot, ApiError> {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.max_waiting {
                    self.waiting.fetch_sub(1, Ordering::Relaxed);
                    return Err(overloaded());
                }
                let _waiter = Waiter(&self.waiting);
                match tokio::time::timeout(self.max_wait, self.slots.clone().acquire_owned()).await
                {
                    Ok(Ok(permit)) => permit,
                    _ => return Err(overloaded()),
                }
            }
        };
        Ok(HashSlot {
            permit,
            jobs: self.jobs.clone(),
        })
    }

    /// Runs `hash` on the blocking pool once a slot is free, or refuses.
    #[cfg(test)]
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        hash: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        self.slot().await?.run(hash).await
    }

    /// Hashes running now (for tests).
    #[cfg(test)]
    fn running(&self, total: usize) -> usize {
        total - self.slots.available_permits()
    }
}

/// The right to run one hash now.
pub(crate) struct HashSlot {
    permit: OwnedSemaphorePermit,
    jobs: mpsc::Sender<Job>,
}

impl HashSlot {
    /// Runs `hash` on a hashing thread; the slot is free again when the hash ends.
    pub(crate) async fn run<T: Send + 'static>(
        self,
        hash: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let permit = self.permit;
        let job: Job = Box::new(move || {
            let out = hash();
            drop(permit);
            let _ = tx.send(out);
        });
        self.jobs
            .send(job)
            .map_err(|_| ApiError::internal(anyhow::anyhow!("the hashing threads are gone")))?;
        rx.await
            .map_err(|_| ApiError::internal(anyhow::anyhow!("a password hash was lost")))
    }
}

fn overloaded() -> ApiError {
    ApiError::Overloaded("too many logins at once; try again in a moment".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_n_run_a_few_wait_the_rest_are_refused_at_once() {
        let work = Arc::new(PasswordWork::new(2, 3, Duration::from_secs(5)));
        let peak = Arc::new(AtomicUsize::new(0));
        let now = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (work, peak, now) = (work.clone(), peak.clone(), now.clone());
            tasks.push(tokio::spawn(async move {
                work.run(move || {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(100));
                    now.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        let mut ok = 0;
        let mut refused = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => ok += 1,
                Err(ApiError::Overloaded(_)) => refused += 1,
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2, "never more than 2 at once");
        assert_eq!(ok, 5, "2 running + 3 waiting");
        assert_eq!(refused, 15);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_request_keeps_its_slot_until_the_hash_ends() {
        let work = Arc::new(PasswordWork::new(1, 0, Duration::from_millis(10)));
        let w = work.clone();
        let started = Arc::new(tokio::sync::Notify::new());
        let s = started.clone();
        let req = tokio::spawn(async move {
            w.run(move || {
                s.notify_one();
                std::thread::sleep(Duration::from_millis(300));
            })
            .await
        });
        started.notified().await;
        req.abort(); // the client went away, the deadline fired...
        assert_eq!(
            work.running(1),
            1,
            "...but the hash still runs and holds its slot"
        );
        assert!(matches!(
            work.run(|| ()).await,
            Err(ApiError::Overloaded(_))
        ));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(work.run(|| ()).await.is_ok());
    }
}
