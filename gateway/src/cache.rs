//! Short-lived caches for what anonymous crowds read: the activity list, one activity, and
//! the live status the admission route checks.
//!
//! Without them every `GET /api/v1/activities` cost one SQL query and up to 100
//! `SECKILL.STATUS` calls, competing with login, pay and cancel for the MySQL pool exactly
//! when a sale draws a crowd. Here each value is loaded at most once per
//! `gateway.cache_refresh_ms` whatever the number of readers: the first reader of a stale
//! value loads it while the others wait for that one load (single flight) and share its
//! result, failures included (a dead database is asked once per interval, not once per
//! request). Keyed caches are bounded; a key that does not fit is loaded uncached.

use crate::error::ApiError;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A loaded value or the message of the failure, shared by every reader of the interval.
type Outcome<T> = Result<Arc<T>, Arc<str>>;

/// One cached value.
pub(crate) struct Slot<T> {
    value: Mutex<Option<(Instant, Outcome<T>)>>,
    /// Held by the one reader that loads; the others wait on it.
    loading: tokio::sync::Mutex<()>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            value: Mutex::new(None),
            loading: tokio::sync::Mutex::new(()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl<T> Slot<T> {
    /// The value, when loaded less than `ttl` ago.
    pub(crate) fn fresh(&self, ttl: Duration) -> Option<Outcome<T>> {
        lock(&self.value)
            .as_ref()
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, v)| v.clone())
    }

    fn is_fresh(&self, ttl: Duration) -> bool {
        self.fresh(ttl).is_some()
    }

    fn clear(&self) {
        *lock(&self.value) = None;
    }

    /// The value, loading it with `load` when it is older than `ttl` (one load at a time).
    pub(crate) async fn get<F, Fut>(&self, ttl: Duration, load: F) -> Result<Arc<T>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        if let Some(v) = self.fresh(ttl) {
            return unshare(v);
        }
        let _loading = self.loading.lock().await;
        // Someone else may have loaded it while we waited.
        if let Some(v) = self.fresh(ttl) {
            return unshare(v);
        }
        match load().await {
            Ok(v) => {
                let v = Arc::new(v);
                *lock(&self.value) = Some((Instant::now(), Ok(v.clone())));
                Ok(v)
            }
            Err(e) => {
                let shared: Arc<str> = Arc::from(e.to_string());
                *lock(&self.value) = Some((Instant::now(), Err(shared)));
                Err(e)
            }
        }
    }
}

fn unshare<T>(v: Outcome<T>) -> Result<Arc<T>, ApiError> {
    v.map_err(|msg| ApiError::Unavailable(msg.to_string()))
}

/// Cached values by key, at most `capacity` of them.
pub(crate) struct Keyed<K, T> {
    slots: Mutex<HashMap<K, Arc<Slot<T>>>>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, T> Keyed<K, T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The slot of `key`; a fresh unshared one when the cache is full of live entries.
    pub(crate) fn slot(&self, key: &K, ttl: Duration) -> Arc<Slot<T>> {
        let mut slots = lock(&self.slots);
        if let Some(s) = slots.get(key) {
            return s.clone();
        }
        if slots.len() >= self.capacity {
            // Keep what is fresh or being loaded right now.
            slots.retain(|_, s| s.is_fresh(ttl) || Arc::strong_count(s) > 1);
            if slots.len() >= self.capacity {
                return Arc::new(Slot::default());
            }
        }
        let s = Arc::new(Slot::default());
        slots.insert(key.clone(), s.clone());
        s
    }

    pub(crate) fn clear(&self) {
        lock(&self.slots).clear();
    }
}

/// The gateway's caches (see the module comment).
pub(crate) struct Caches<List, One, Status> {
    pub ttl: Duration,
    pub list: Slot<List>,
    pub one: Keyed<u64, One>,
    pub status: Keyed<String, Status>,
}

impl<List, One, Status> Caches<List, One, Status> {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            list: Slot::default(),
            one: Keyed::new(4096),
            status: Keyed::new(4096),
        }
    }

    /// Forgets everything (after a change made through this gateway, so its author sees it).
    pub(crate) fn invalidate(&self) {
        self.list.clear();
        self.one.clear();
        self.status.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crowd_of_readers_causes_one_load_per_interval() {
        let slot = Arc::new(Slot::<u32>::default());
        let loads = Arc::new(AtomicUsize::new(0));
        let ttl = Duration::from_millis(300);
        let read = |slot: Arc<Slot<u32>>, loads: Arc<AtomicUsize>| async move {
            slot.get(ttl, || async {
                loads.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(7)
            })
            .await
        };
        let crowd: Vec<_> = (0..500)
            .map(|_| tokio::spawn(read(slot.clone(), loads.clone())))
            .collect();
        for r in crowd {
            assert_eq!(*r.await.unwrap().unwrap(), 7);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        tokio::time::sleep(ttl).await;
        read(slot.clone(), loads.clone()).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 2, "stale: loaded again");
    }

    #[tokio::test]
    async fn failures_are_shared_for_the_interval_too() {
        let slot = Slot::<u32>::default();
        let ttl = Duration::from_secs(60);
        let e = slot
            .get(ttl, || async {
                Err(ApiError::Unavailable("db down".into()))
            })
            .await;
        assert!(matches!(e, Err(ApiError::Unavailable(_))));
        let again = slot.get(ttl, || async { Ok(1) }).await;
        assert!(
            matches!(again, Err(ApiError::Unavailable(m)) if m == "db down"),
            "not asked again within the interval"
        );
        slot.clear();
        assert_eq!(*slot.get(ttl, || async { Ok(1) }).await.unwrap(), 1);
    }

    #[test]
    fn keyed_caches_are_bounded() {
        let k = Keyed::<u64, u32>::new(8);
        let ttl = Duration::from_secs(60);
        let kept: Vec<_> = (0..8).map(|i| k.slot(&i, ttl)).collect();
        // Full of slots being used: a new key gets an unshared slot.
        let extra = k.slot(&100, ttl);
        assert!(!Arc::ptr_eq(&extra, &k.slot(&100, ttl)));
        drop(kept);
        // Nobody holds them and none is loaded: they make room.
        let a = k.slot(&200, ttl);
        assert!(Arc::ptr_eq(&a, &k.slot(&200, ttl)));
    }
}
