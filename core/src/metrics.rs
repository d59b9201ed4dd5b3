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
//! counters and histogram are created once (at start-up, or by the reload
//! that adds the app), so no label is built per request. Requests no app
//! served (static files, refusals) count under `app="-"`.
//!
//! A reload calls [`Metrics::update`]: apps it adds get their series; the
//! queue-wait histograms and plugin counters are those of the new pools and
//! plugins from then on (a restarted pool's or a reloaded plugin's counters
//! start again from zero, which Prometheus reads as a counter reset).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
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
#[derive(Clone)]
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
    requests: Family<RequestLabels, Counter>,
    head: Histograms,
    failures: Family<CauseLabels, Counter>,
    /// Swapped whole when a reload adds apps; an app removed keeps its
    /// series (counters never go back).
    per_app: ArcSwap<HashMap<Arc<str>, AppRequests>>,
    no_app: AppRequests,
    instances: Family<StateLabels, Gauge>,
    waiting: Family<AppLabel, Gauge>,
    request_crashes: Family<AppLabel, Counter>,
    bad_answers: Family<AppLabel, Counter>,
    spawns: Family<AppLabel, Counter>,
    exits: Family<ReasonLabels, Counter>,
    resident: Family<AppLabel, Gauge>,
    connections_open: Gauge,
    connections_refused: Counter,
    /// The pools' and plugins' own counters (shared with the collector).
    live: Arc<ArcSwap<LiveSets>>,
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
        let (connections_open, connections_refused) = register_front(&mut registry);
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
        let live = Arc::new(ArcSwap::from_pointee(LiveSets::default()));
        registry.register_collector(Box::new(Live(live.clone())));
        let metrics = Metrics {
            per_app: ArcSwap::default(),
            no_app: app_requests(&requests, &head, &failures, NO_APP),
            requests,
            head,
            failures,
            registry,
            instances,
            waiting,
            request_crashes,
            bad_answers,
            spawns,
            exits,
            resident,
            connections_open,
            connections_refused,
            live,
            scrape: Mutex::new(()),
        };
        metrics.update(apps, plugins);
        metrics
    }

    /// Makes the series of the apps that have none yet, and takes the
    /// pools' and plugins' own counters from `apps` and `plugins` (at
    /// start-up, and after each reload).
    pub fn update(&self, apps: &Apps, plugins: &Plugins) {
        let mut per_app = HashMap::clone(&self.per_app.load());
        for app in apps.iter() {
            per_app.entry(app.name().clone()).or_insert_with(|| {
                app_requests(&self.requests, &self.head, &self.failures, app.name())
            });
        }
        self.per_app.store(Arc::new(per_app));
        self.live.store(Arc::new(LiveSets::new(apps, plugins)));
    }

    /// A request was answered (its head is out).
    pub fn observe(&self, app: Option<&str>, status: StatusCode, took: Duration) {
        let per_app = self.per_app.load();
        let metrics = app
            .and_then(|name| per_app.get(name))
            .unwrap_or(&self.no_app);
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        metrics.by_class[class].inc();
        metrics.head_seconds.observe(took.as_secs_f64());
    }

    /// A request of `app` failed on the server side (a 5xx).
    pub fn failed(&self, app: &str, cause: FailureCause) {
        if let Some(metrics) = self.per_app.load().get(app) {
            let at = FailureCause::ALL
                .iter()
                .position(|c| *c == cause)
                .unwrap_or(FailureCause::ALL.len() - 1);
            metrics.failures[at].inc();
        }
    }

    /// 5xx answers of `app` so far by cause, for `/status`.
    pub fn failures(&self, app: &str) -> Option<Vec<(FailureCause, u64)>> {
        let per_app = self.per_app.load();
        let metrics = per_app.get(app)?;
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
    pub fn plugin_hooks(&self) -> impl Iterator<Item = (String, &'static str, HookStats)> {
        let live = self.live.load();
        live.hooks
            .iter()
            .map(|(labels, stats)| (labels.plugin.clone(), labels.hook, stats.clone()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// Responses of `app` so far by status class (1xx to 5xx), for `/status`.
    pub fn responses(&self, app: &str) -> Option<[u64; 5]> {
        let per_app = self.per_app.load();
        let metrics = per_app.get(app)?;
        Some(metrics.by_class.each_ref().map(Counter::get))
    }

    /// The OpenMetrics text, with the pools' state as of now.
    pub fn render(&self, apps: &Apps, front: Front) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        self.connections_open
            .set(i64::try_from(front.open).unwrap_or(i64::MAX));
        catch_up(&self.connections_refused, front.refused);
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

/// The request series of one app.
fn app_requests(
    requests: &Family<RequestLabels, Counter>,
    head: &Histograms,
    failures: &Family<CauseLabels, Counter>,
    app: &str,
) -> AppRequests {
    AppRequests {
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
    }
}

/// The client connections' metrics: open now, refused since the start.
fn register_front(registry: &mut Registry) -> (Gauge, Counter) {
    let open = Gauge::default();
    let refused = Counter::default();
    registry.register(
        "fastgate_connections_open",
        "Client connections open (keep-alive and idle ones included)",
        open.clone(),
    );
    registry.register(
        "fastgate_connections_refused",
        "Client connections refused with 503 past max_connections",
        refused.clone(),
    );
    (open, refused)
}

/// The client side, as the HTTP front counts it when scraped.
#[derive(Debug, Clone, Copy)]
pub struct Front {
    /// Client connections open now.
    pub open: usize,
    /// Refused past `max_connections` since the start.
    pub refused: u64,
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
/// plugin chain that bump them; a reload swaps in the new ones.
#[derive(Debug)]
struct Live(Arc<ArcSwap<LiveSets>>);

#[derive(Debug, Default)]
struct LiveSets {
    waits: Vec<(AppLabel, Histogram)>,
    hooks: Vec<(HookLabels, HookStats)>,
}

impl LiveSets {
    fn new(apps: &Apps, plugins: &Plugins) -> LiveSets {
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
        LiveSets { waits, hooks }
    }
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sets = self.0.load();
        let waits = sets.waits.iter().map(|(l, h)| (l, h));
        family(
            &mut encoder,
            "fastgate_queue_wait_seconds",
            "Time requests waited for an instance of their app (0 when one was idle)",
            waits,
        )?;
        let hooks = &sets.hooks;
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
