//! Metrics in the OpenMetrics text format (`GET /metrics` on the admin
//! listener), with the `prometheus-client` crate: request counts by app
//! and status class, the time to the response head per app, and, read from
//! the pools when scraped, instances by state, requests waiting, request
//! crashes and bad answers.
//!
//! The request path costs a hash lookup and three atomic adds: each app's
//! counters and histogram are created once at start-up, so no label is
//! built per request. Requests no app served (static files, refusals)
//! count under `app="-"`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::StatusCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::app::Apps;
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
struct StateLabels {
    app: String,
    state: &'static str,
}

/// One app's request metrics, made once.
#[derive(Clone)]
struct AppRequests {
    by_class: [Counter; 5],
    head_seconds: Histogram,
}

type Histograms = Family<AppLabel, Histogram, fn() -> Histogram>;

/// Every metric of the gateway.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    head: Histograms,
    /// Swapped whole when a reload adds apps; an app removed keeps its
    /// series (counters never go back).
    per_app: ArcSwap<HashMap<Arc<str>, AppRequests>>,
    no_app: AppRequests,
    instances: Family<StateLabels, Gauge>,
    waiting: Family<AppLabel, Gauge>,
    request_crashes: Family<AppLabel, Counter>,
    bad_answers: Family<AppLabel, Counter>,
    /// Scrapes one at a time: the pool counters are copied as deltas.
    scrape: Mutex<()>,
}

fn head_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    /// The metrics of a gateway serving `apps`.
    pub fn new(apps: &Apps) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let head: Histograms = Family::new_with_constructor(head_histogram);
        let instances = Family::<StateLabels, Gauge>::default();
        let waiting = Family::<AppLabel, Gauge>::default();
        let request_crashes = Family::<AppLabel, Counter>::default();
        let bad_answers = Family::<AppLabel, Counter>::default();
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
        let metrics = Metrics {
            per_app: ArcSwap::default(),
            no_app: app_requests(&requests, &head, NO_APP),
            requests,
            head,
            registry,
            instances,
            waiting,
            request_crashes,
            bad_answers,
            scrape: Mutex::new(()),
        };
        metrics.add_apps(apps);
        metrics
    }

    /// Makes the series of the apps that have none yet (at start-up, and
    /// for the apps a reload adds).
    pub fn add_apps(&self, apps: &Apps) {
        let mut per_app = HashMap::clone(&self.per_app.load());
        for app in apps.iter() {
            per_app
                .entry(app.name().clone())
                .or_insert_with(|| app_requests(&self.requests, &self.head, app.name()));
        }
        self.per_app.store(Arc::new(per_app));
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

    /// Responses of `app` so far by status class (1xx to 5xx), for `/status`.
    pub fn responses(&self, app: &str) -> Option<[u64; 5]> {
        let per_app = self.per_app.load();
        let metrics = per_app.get(app)?;
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
    app: &str,
) -> AppRequests {
    AppRequests {
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

/// Brings a counter up to a pool's own (monotonic) count.
fn catch_up(counter: &Counter, now: u64) {
    let seen = counter.get();
    if now > seen {
        counter.inc_by(now - seen);
    }
}
