//! What each plugin's hooks cost: calls, failures and time, per hook, for
//! the admin listener's `/status` and `/metrics`. The counters are
//! `prometheus-client`'s own atomics (the metrics module encodes them as
//! they are, with no copy), bumped by the chain around each call.

use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// The hooks a request runs, by the names the log and the metrics use.
pub const HOOKS: [&str; 3] = ["on_request", "on_response", "inject_env"];

/// One hook of one plugin.
#[derive(Debug, Clone)]
pub struct HookStats {
    pub calls: Counter,
    /// Failed calls (an error, a trap, or an answer the gateway refused),
    /// fail-open or fail-closed alike.
    pub errors: Counter,
    pub seconds: Histogram,
    /// The time of every call, in nanoseconds (the histogram's sum is not
    /// readable outside the metrics encoder).
    pub nanos: Counter,
}

impl Default for HookStats {
    fn default() -> HookStats {
        HookStats {
            calls: Counter::default(),
            errors: Counter::default(),
            // 10 µs to about 0.3 s: a filter is meant to take microseconds.
            seconds: Histogram::new(exponential_buckets(0.000_01, 2.0, 15)),
            nanos: Counter::default(),
        }
    }
}

impl HookStats {
    /// A call that began at `started` returned.
    pub(super) fn called(&self, started: Instant) {
        let took = started.elapsed();
        self.calls.inc();
        self.seconds.observe(took.as_secs_f64());
        self.nanos
            .inc_by(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
    }
}

/// Every hook of one plugin.
#[derive(Debug, Clone, Default)]
pub struct PluginStats {
    pub on_request: HookStats,
    pub on_response: HookStats,
    pub inject_env: HookStats,
}

impl PluginStats {
    /// The stats of the hook called `name` (one of [`HOOKS`]).
    pub fn hook(&self, name: &str) -> &HookStats {
        match name {
            "on_request" => &self.on_request,
            "on_response" => &self.on_response,
            _ => &self.inject_env,
        }
    }
}
