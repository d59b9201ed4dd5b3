//! Metrics in the OpenMetrics text format (`GET /metrics` on the admin
//! listener), with the `prometheus-client` crate: request counts by app
//! and status class, failed requests by cause, the time to the response
//! head per app, and, read from the pools when scraped, instances by state
//! and their resident memory, requests waiting, request crashes, bad
//! answers, spawns and exits by reason. The pools' queue-wait histograms
//! and the plugins' per-hook counters live where they are bumped (the pool,
//! the plugin chain): a collector encodes them as they are at each scrape.
//!
//! The request path costs a hash lookup and three atomic adds: each app's
//! counters and histogram are created once at start-up, so no label is
//! built per request. Requests no app served (static files, refusals)
//! count under `app="-"`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::app::{Apps, FailureCause};
use crate::plugin::{HOOKS, HookStats, Plugins};
use crate::pool::InstanceState;

/// The label of requests no app served.
const NO_APP: &str = "-";
/// Status classes, as labels.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    app: String,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabel {
    app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    app: String,
    cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    app: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    plugin: String,
    hook: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    app: String,
    state: &'static str,
}

/// One app's request metrics, made once.
struct AppRequests {
    by_class: [Counter; 5],
    /// 5xx answers by cause, in [`FailureCause::ALL`] order.
    failures: [Counter; FailureCause::ALL.len()],
    head_seconds: Histogram,
}

type Histograms = Family<AppLabel, Histogram, fn() -> Histogram>;

/// Every metric of the gateway.
pub struct Metrics {
    registry: Registry,
    per_app: HashMap<Arc<str>, AppRequests>,
    no_app: AppRequests,
    instances: Family<StateLabels, Gauge>,
    waiting: Family<AppLabel, Gauge>,
    request_crashes: Family<AppLabel, Counter>,
    bad_answers: Family<AppLabel, Counter>,
    spawns: Family<AppLabel, Counter>,
    exits: Family<ReasonLabels, Counter>,
    resident: Family<AppLabel, Gauge>,
    /// Each plugin's hooks (shared with the collector), for `/status`.
    hooks: Vec<(HookLabels, HookStats)>,
    /// Scrapes one at a time: the pool counters are copied as deltas.
    scrape: Mutex<()>,
}

fn head_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    /// The metrics of a gateway serving `apps`.
    pub fn new(apps: &Apps, plugins: &Plugins) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let head: Histograms = Family::new_with_constructor(head_histogram);
        let instances = Family::<StateLabels, Gauge>::default();
        let waiting = Family::<AppLabel, Gauge>::default();
        let request_crashes = Family::<AppLabel, Counter>::default();
        let bad_answers = Family::<AppLabel, Counter>::default();
        let failures = Family::<CauseLabels, Counter>::default();
        let spawns = Family::<AppLabel, Counter>::default();
        let exits = Family::<ReasonLabels, Counter>::default();
        let resident = Family::<AppLabel, Gauge>::default();
        registry.register(
            "fastgate_requests",
            "Requests answered, by app and status class",
            requests.clone(),
        );
        registry.register(
            "fastgate_response_head_seconds",
            "Time from the request to its response head, by app",
            head.clone(),
        );
        registry.register(
            "fastgate_instances",
            "App processes by state",
            instances.clone(),
        );
        registry.register(
            "fastgate_queue_waiting",
            "Requests waiting for an instance",
            waiting.clone(),
        );
        registry.register(
            "fastgate_request_crashes",
            "Processes that died while serving a request",
            request_crashes.clone(),
        );
        registry.register(
            "fastgate_bad_answers",
            "Instances replaced after a protocol error or a malformed response head",
            bad_answers.clone(),
        );
        registry.register(
            "fastgate_failed_requests",
            "Requests of an app answered with a 5xx, by cause",
            failures.clone(),
        );
        registry.register(
            "fastgate_process_spawns",
            "App processes spawned",
            spawns.clone(),
        );
        registry.register(
            "fastgate_process_exits",
            "App processes reaped, by why they ended",
            exits.clone(),
        );
        registry.register(
            "fastgate_instance_resident_memory_bytes",
            "Resident memory of an app's processes, summed",
            resident.clone(),
        );
        let live = Live::new(apps, plugins);
        let hooks = live.hooks.clone();
        registry.register_collector(Box::new(live));
        let of = |app: &str| AppRequests {
            failures: FailureCause::ALL.map(|cause| {
                failures
                    .get_or_create(&CauseLabels {
                        app: app.to_string(),
                        cause: cause.as_str(),
                    })
                    .clone()
            }),
            by_class: CLASSES.map(|code| {
                requests
                    .get_or_create(&RequestLabels {
                        app: app.to_string(),
                        code,
                    })
                    .clone()
            }),
            head_seconds: head
                .get_or_create(&AppLabel {
                    app: app.to_string(),
                })
                .clone(),
        };
        Metrics {
            per_app: apps
                .with_pools()
                .map(|(name, _)| (name.clone(), of(name)))
                .collect(),
            no_app: of(NO_APP),
            registry,
            instances,
            waiting,
            request_crashes,
            bad_answers,
            spawns,
            exits,
            resident,
            hooks,
            scrape: Mutex::new(()),
        }
    }

    /// A request was answered (its head is out).
    pub fn observe(&self, app: Option<&str>, status: StatusCode, took: Duration) {
        let metrics = app
            .and_then(|name| self.per_app.get(name))
            .unwrap_or(&self.no_app);
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        metrics.by_class[class].inc();
        metrics.head_seconds.observe(took.as_secs_f64());
    }

    /// A request of `app` failed on the server side (a 5xx).
    pub fn failed(&self, app: &str, cause: FailureCause) {
        if let Some(metrics) = self.per_app.get(app) {
            let at = FailureCause::ALL
                .iter()
                .position(|c| *c == cause)
                .unwrap_or(FailureCause::ALL.len() - 1);
            metrics.failures[at].inc();
        }
    }

    /// 5xx answers of `app` so far by cause, for `/status`.
    pub fn failures(&self, app: &str) -> Option<Vec<(FailureCause, u64)>> {
        let metrics = self.per_app.get(app)?;
        Some(
            FailureCause::ALL
                .iter()
                .zip(&metrics.failures)
                .map(|(cause, counter)| (*cause, counter.get()))
                .collect(),
        )
    }

    /// Each hook of each plugin that has per-request hooks: plugin name,
    /// hook name, its counters.
    pub fn plugin_hooks(&self) -> impl Iterator<Item = (&str, &'static str, &HookStats)> {
        self.hooks
            .iter()
            .map(|(labels, stats)| (labels.plugin.as_str(), labels.hook, stats))
    }

    /// Responses of `app` so far by status class (1xx to 5xx), for `/status`.
    pub fn responses(&self, app: &str) -> Option<[u64; 5]> {
        let metrics = self.per_app.get(app)?;
        Some(metrics.by_class.each_ref().map(Counter::get))
    }

    /// The OpenMetrics text, with the pools' state as of now.
    pub fn render(&self, apps: &Apps) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        for (name, pool) in apps.with_pools() {
            let Some(pool) = pool else { continue };
            let snapshot = pool.snapshot();
            let label = AppLabel {
                app: name.to_string(),
            };
            for state in [
                InstanceState::Starting,
                InstanceState::Idle,
                InstanceState::Busy,
                InstanceState::Stopping,
            ] {
                let count = snapshot
                    .instances
                    .iter()
                    .filter(|i| i.state == state)
                    .count();
                self.instances
                    .get_or_create(&StateLabels {
                        app: name.to_string(),
                        state: state.as_str(),
                    })
                    .set(count as i64);
            }
            self.waiting
                .get_or_create(&label)
                .set(snapshot.status.waiting as i64);
            catch_up(
                &self.request_crashes.get_or_create(&label),
                snapshot.status.request_crashes,
            );
            catch_up(
                &self.bad_answers.get_or_create(&label),
                snapshot.status.bad_answers,
            );
            catch_up(&self.spawns.get_or_create(&label), snapshot.spawns);
            for (reason, count) in &snapshot.exits {
                let labels = ReasonLabels {
                    app: name.to_string(),
                    reason: reason.as_str(),
                };
                catch_up(&self.exits.get_or_create(&labels), *count);
            }
            let rss_kib: u64 = snapshot.instances.iter().filter_map(|i| i.rss_kib).sum();
            self.resident
                .get_or_create(&label)
                .set(i64::try_from(rss_kib * 1024).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Brings a counter up to a pool's own (monotonic) count.
fn catch_up(counter: &Counter, now: u64) {
    let seen = counter.get();
    if now > seen {
        counter.inc_by(now - seen);
    }
}

/// What is encoded as it is at each scrape: each pool's queue-wait
/// histogram and each plugin's hook counters, shared with the pool and the
/// plugin chain that bump them.
#[derive(Debug)]
struct Live {
    waits: Vec<(AppLabel, Histogram)>,
    hooks: Vec<(HookLabels, HookStats)>,
}

impl Live {
    fn new(apps: &Apps, plugins: &Plugins) -> Live {
        let waits = apps
            .with_pools()
            .filter_map(|(name, pool)| {
                let label = AppLabel {
                    app: name.to_string(),
                };
                Some((label, pool?.wait_seconds().clone()))
            })
            .collect();
        // Only the hooks a plugin has: a launcher has none per request.
        let hooks = plugins
            .iter()
            .flat_map(|plugin| {
                let caps = &plugin.capabilities;
                let has = [caps.request_filter, caps.response_filter, caps.inject_env];
                HOOKS
                    .iter()
                    .zip(has)
                    .filter(|(_, has)| *has)
                    .map(|(hook, _)| {
                        let labels = HookLabels {
                            plugin: plugin.name.to_string(),
                            hook,
                        };
                        (labels, plugin.stats.hook(hook).clone())
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        Live { waits, hooks }
    }
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let waits = self.waits.iter().map(|(l, h)| (l, h));
        family(
            &mut encoder,
            "fastgate_queue_wait_seconds",
            "Time requests waited for an instance of their app (0 when one was idle)",
            waits,
        )?;
        let hooks = &self.hooks;
        family(
            &mut encoder,
            "fastgate_plugin_calls",
            "Plugin hook calls",
            hooks.iter().map(|(l, s)| (l, &s.calls)),
        )?;
        family(
            &mut encoder,
            "fastgate_plugin_errors",
            "Plugin hook calls that failed (fail-open or fail-closed)",
            hooks.iter().map(|(l, s)| (l, &s.errors)),
        )?;
        family(
            &mut encoder,
            "fastgate_plugin_call_seconds",
            "Time spent in plugin hook calls",
            hooks.iter().map(|(l, s)| (l, &s.seconds)),
        )
    }
}

/// Encodes one metric family from labelled metrics (nothing when empty:
/// OpenMetrics allows a family with no sample, but it says nothing).
fn family<'a, L, M>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metrics: impl Iterator<Item = (&'a L, &'a M)>,
) -> Result<(), std::fmt::Error>
where
    L: EncodeLabelSet + 'a,
    M: EncodeMetric + 'a,
{
    let mut metrics = metrics.peekable();
    let Some((_, first)) = metrics.peek() else {
        return Ok(());
    };
    let mut family = encoder.encode_descriptor(name, help, None, first.metric_type())?;
    for (labels, metric) in metrics {
        metric.encode(family.encode_family(labels)?)?;
    }
    Ok(())
}
