//! `monitor_changes_to` (IIS monitorChangesTo): the pool's background task
//! that recycles the pool when a monitored file changes, or any file below
//! a monitored directory.
//!
//! Changes come from the platform's change notification (inotify, through
//! the `notify` crate): nothing is looked at while nothing changes. A file
//! is watched through its folder, so that an editor or a deploy that
//! replaces it (a new inode) is still seen. A burst of changes (a deploy
//! writing many files) recycles once, after `SETTLE` of quiet. When
//! notification cannot be had (the inotify watch limit, say), the task
//! falls back to looking at each monitored path every second, and says so.
//!
//! This file only notices changes; recycling is the pool's.

use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::warn;

use super::Inner;

/// How often monitored paths are looked at when notification is not available.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Quiet time after a change before the pool is recycled, so that a burst
/// of changes recycles once.
const SETTLE: Duration = Duration::from_millis(100);
/// How often the task checks, with no change, that its pool still runs.
const ALIVE_CHECK: Duration = Duration::from_secs(5);

/// Recycles the pool when a `monitor_changes_to` path changes.
pub(super) async fn watch_files(pool: Weak<Inner>) {
    let Some(monitored) = pool.upgrade().map(|inner| inner.monitored.clone()) else {
        return;
    };
    let (tx, rx) = mpsc::channel(256);
    match watcher(&monitored, tx) {
        // The watcher lives as long as this task.
        Ok(_watcher) => notified(pool, rx).await,
        Err(error) => {
            warn!(error = %error, "cannot watch monitor_changes_to for changes; looking at the files every second instead");
            poll(pool, &monitored).await;
        }
    }
}

/// A watcher sending the events that concern `monitored` into `tx`.
fn watcher(
    monitored: &[PathBuf],
    tx: mpsc::Sender<PathBuf>,
) -> notify::Result<notify::RecommendedWatcher> {
    let targets = monitored.to_vec();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        for path in &event.paths {
            if let Some(target) = targets.iter().find(|t| concerns(t, path)) {
                // A full channel already holds a change to act on.
                let _ = tx.try_send(target.clone());
            }
        }
    })?;
    for path in monitored {
        if path.is_dir() {
            watcher.watch(path, RecursiveMode::Recursive)?;
        } else {
            let folder = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            watcher.watch(folder, RecursiveMode::NonRecursive)?;
        }
    }
    Ok(watcher)
}

/// Whether a change at `changed` concerns the monitored `target`: the file
/// itself, or anything below a monitored directory.
fn concerns(target: &Path, changed: &Path) -> bool {
    changed == target || changed.starts_with(target)
}

async fn notified(pool: Weak<Inner>, mut rx: mpsc::Receiver<PathBuf>) {
    loop {
        // Woken now and then without a change, to end with its pool.
        let changed = match tokio::time::timeout(ALIVE_CHECK, rx.recv()).await {
            Ok(Some(path)) => Some(path),
            Ok(None) => return,
            Err(_) => None,
        };
        if changed.is_some() {
            // Let the burst settle, then recycle once for all of it.
            while let Ok(Some(_)) = tokio::time::timeout(SETTLE, rx.recv()).await {}
        }
        let Some(inner) = pool.upgrade() else { return };
        if inner.lock().closed {
            return;
        }
        if let Some(path) = changed {
            inner.recycle(&format!("{} changed (monitor_changes_to)", path.display()));
        }
    }
}

/// The fallback: each monitored path's modification time, size and inode,
/// looked at every second.
async fn poll(pool: Weak<Inner>, monitored: &[PathBuf]) {
    let stamp = |path: &Path| {
        std::fs::metadata(path).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.mtime(), m.mtime_nsec(), m.len(), m.ino())
        })
    };
    let mut last: Vec<_> = monitored.iter().map(|p| stamp(p)).collect();
    let mut interval = tokio::time::interval(POLL_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(inner) = pool.upgrade() else { return };
        if inner.lock().closed {
            return;
        }
        for (path, seen) in monitored.iter().zip(last.iter_mut()) {
            let now = stamp(path);
            if now != *seen {
                *seen = now;
                inner.recycle(&format!("{} changed (monitor_changes_to)", path.display()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::concerns;
    use std::path::Path;

    #[test]
    fn a_change_concerns_the_file_or_what_is_below_a_directory() {
        assert!(concerns(Path::new("/s/app.ini"), Path::new("/s/app.ini")));
        assert!(!concerns(
            Path::new("/s/app.ini"),
            Path::new("/s/other.ini")
        ));
        assert!(concerns(Path::new("/s/code"), Path::new("/s/code/a/b.py")));
        assert!(!concerns(Path::new("/s/code"), Path::new("/s/codex/b.py")));
    }
}
