//! `monitor_changes_to` (IIS monitorChangesTo): the pool's background task
//! that looks at the monitored files every second and recycles the pool
//! when one changes (its modification time, size or inode).
//!
//! This file only notices changes; recycling is the pool's.

use std::path::Path;
use std::sync::Weak;
use std::time::Duration;

use super::Inner;

/// How often `monitor_changes_to` files are looked at.
const MONITOR_INTERVAL: Duration = Duration::from_secs(1);

/// Recycles the pool when a `monitor_changes_to` file changes.
pub(super) async fn watch_files(pool: Weak<Inner>) {
    let stamp = |path: &Path| {
        std::fs::metadata(path).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.mtime(), m.mtime_nsec(), m.len(), m.ino())
        })
    };
    let mut last: Vec<_> = match pool.upgrade() {
        Some(inner) => inner.monitored.iter().map(|p| stamp(p)).collect(),
        None => return,
    };
    let mut interval = tokio::time::interval(MONITOR_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(inner) = pool.upgrade() else { return };
        if inner.lock().closed {
            return;
        }
        for (path, seen) in inner.monitored.iter().zip(last.iter_mut()) {
            let now = stamp(path);
            if now != *seen {
                *seen = now;
                inner.recycle(&format!("{} changed (monitor_changes_to)", path.display()));
            }
        }
    }
}
