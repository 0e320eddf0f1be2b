//! Serializes commits and deletions of one content within this process, so that a delete of the
//! last reference cannot remove the bytes an upload of the same content has just committed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

#[derive(Clone, Default)]
pub(crate) struct HashLocks {
    inner: Arc<Mutex<HashMap<String, Arc<AsyncMutex<()>>>>>,
}

pub(crate) struct HashGuard {
    _guard: OwnedMutexGuard<()>,
    key: String,
    locks: HashLocks,
}

impl HashLocks {
    pub(crate) async fn lock(&self, hash: &str) -> HashGuard {
        let m = self
            .inner
            .lock()
            .expect("lock map poisoned")
            .entry(hash.to_owned())
            .or_default()
            .clone();
        let guard = m.lock_owned().await;
        HashGuard {
            _guard: guard,
            key: hash.to_owned(),
            locks: self.clone(),
        }
    }
}

impl Drop for HashGuard {
    fn drop(&mut self) {
        let mut map = self.locks.inner.lock().expect("lock map poisoned");
        // Two references: the map's and this guard's mutex. Forget idle entries.
        if map
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) <= 2)
        {
            map.remove(&self.key);
        }
    }
}
