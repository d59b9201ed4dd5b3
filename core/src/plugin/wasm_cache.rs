//! The compile cache of wasm plugins: wasmtime's own cache, keyed by the
//! component's bytes and the engine's settings, kept in
//! `[server] plugin_cache_dir`. Compiling a plugin takes 0.2 s for a small
//! one and over a second for a large one; from the cache a start (and
//! `fastgate check`) loads the machine code instead.
//!
//! The engine is shared by every wasm plugin and made once, so the folder
//! is given once, before the first plugin loads ([`use_dir`]). A folder
//! that cannot be used costs the cache, never the start: it is logged and
//! plugins are compiled as before.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tracing::{debug, warn};
use wasmtime::{Cache, CacheConfig};

/// The folder given by the config (first call wins), or `None`: no cache.
static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
/// The cache handed to the engine (a clone shares its counters).
static CACHE: OnceLock<Option<Cache>> = OnceLock::new();

/// Sets where compiled plugins are kept; `None` turns the cache off. Only
/// the first call counts (the engine is made once per process).
pub fn use_dir(dir: Option<&Path>) {
    let _ = DIR.set(dir.map(Path::to_path_buf));
}

/// The cache for the engine, when one is set and usable.
pub(super) fn cache() -> Option<Cache> {
    CACHE
        .get_or_init(|| {
            let dir = DIR.get()?.as_ref()?;
            match open(dir) {
                Ok(cache) => {
                    debug!(dir = %dir.display(), "wasm plugins' compile cache");
                    Some(cache)
                }
                Err(error) => {
                    warn!(dir = %dir.display(), error = %error, "cannot use the compile cache for wasm plugins (plugin_cache_dir); plugins are compiled at every start");
                    None
                }
            }
        })
        .clone()
}

/// Whether the last plugin loaded came from the cache: hits so far.
pub(super) fn hits() -> usize {
    CACHE
        .get()
        .and_then(Option::as_ref)
        .map_or(0, Cache::cache_hits)
}

fn open(dir: &Path) -> Result<Cache, String> {
    crate::pool::private_dir(dir).map_err(|e| e.to_string())?;
    let mut config = CacheConfig::new();
    config.with_directory(dir);
    Cache::new(config).map_err(|e| format!("{e:#}"))
}
