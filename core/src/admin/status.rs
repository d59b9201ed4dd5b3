//! `/status`: every app's pool and processes, and the plugins' hooks, as
//! JSON for tools (and the admin page) and as text for people
//! (`?format=text`). Built from one snapshot per pool.

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::app::{Apps, FailureCause};
use crate::metrics::{Front, Metrics};
use crate::pool::{InstanceInfo, LastExit, Offline, PoolSnapshot};

/// One app at one moment.
struct AppReport {
    name: String,
    pool: Option<PoolSnapshot>,
    responses: Option<[u64; 5]>,
    failures: Option<Vec<(FailureCause, u64)>>,
}

/// One plugin hook's counters at one moment.
struct HookReport {
    plugin: String,
    hook: &'static str,
    calls: u64,
    errors: u64,
    seconds: f64,
}

/// The state of the gateway at one moment.
pub(super) struct Report {
    uptime_secs: u64,
    front: Front,
    apps: Vec<AppReport>,
    plugins: Vec<HookReport>,
}

impl Report {
    pub(super) fn take(apps: &Apps, metrics: &Metrics, front: Front, started: Instant) -> Report {
        Report {
            uptime_secs: started.elapsed().as_secs(),
            front,
            apps: apps
                .with_pools()
                .map(|(name, pool)| AppReport {
                    name: name.to_string(),
                    pool: pool.map(|p| p.snapshot()),
                    responses: metrics.responses(name),
                    failures: metrics.failures(name),
                })
                .collect(),
            plugins: metrics
                .plugin_hooks()
                .map(|(plugin, hook, stats)| HookReport {
                    plugin: plugin.to_string(),
                    hook,
                    calls: stats.calls.get(),
                    errors: stats.errors.get(),
                    seconds: stats.nanos.get() as f64 / 1e9,
                })
                .collect(),
        }
    }

    pub(super) fn to_json(&self) -> String {
        let apps: Vec<Value> = self.apps.iter().map(app_json).collect();
        let plugins: Vec<Value> = self
            .plugins
            .iter()
            .map(|h| {
                json!({
                    "name": h.plugin, "hook": h.hook, "calls": h.calls,
                    "errors": h.errors, "time_seconds": h.seconds,
                })
            })
            .collect();
        let report = json!({
            "uptime_seconds": self.uptime_secs,
            "connections": {"open": self.front.open, "refused": self.front.refused},
            "apps": apps,
            "plugins": plugins,
        });
        let mut text = report.to_string();
        text.push('\n');
        text
    }

    pub(super) fn to_text(&self) -> String {
        let mut out = format!(
            "uptime {}s\nconnections {} open, {} refused (max_connections)\n",
            self.uptime_secs, self.front.open, self.front.refused
        );
        for app in &self.apps {
            app_text(&mut out, app);
        }
        if !self.plugins.is_empty() {
            out.push_str("\nplugins\n");
        }
        for h in &self.plugins {
            let _ = writeln!(
                out,
                "  {} {}: {} calls, {} errors, {:.3}s",
                h.plugin, h.hook, h.calls, h.errors, h.seconds
            );
        }
        out
    }
}

fn app_text(out: &mut String, app: &AppReport) {
    let name = &app.name;
    let Some(pool) = &app.pool else {
        let _ = writeln!(out, "\napp {name}: cgi (a process per request)");
        counts_text(out, app);
        return;
    };
    let s = &pool.status;
    let counts = Counts::of(pool);
    let _ = writeln!(
        out,
        "\napp {name}: {}\n  instances {} (idle {}, busy {}, starting {}, stopping {}), max {}{}\n  waiting {} (most {}), request crashes {}, bad answers {}\n  rapid fails {} in the last minute ({} in all), spawns {}",
        state_text(pool),
        counts.total,
        counts.idle,
        counts.busy,
        counts.starting,
        counts.stopping,
        s.limit,
        if pool.automatic { " (automatic)" } else { "" },
        s.waiting,
        pool.most_waiting,
        s.request_crashes,
        s.bad_answers,
        pool.rapid_fails_last_minute,
        pool.rapid_fails_total,
        pool.spawns,
    );
    counts_text(out, app);
    if let Some(exit) = &pool.last_exit {
        let _ = writeln!(
            out,
            "  last exit: pid {} {} ({}), {}s ago",
            exit.pid,
            exit.reason.as_str(),
            exit.status,
            ago(exit.at).as_secs()
        );
    }
    for i in &pool.instances {
        let rss = i.rss_kib.map_or("-".to_string(), |k| format!("{k} KiB"));
        let _ = write!(
            out,
            "  pid {:>7}  {:<8}  {} requests, rss {rss}, up {}s",
            i.pid,
            i.state.as_str(),
            i.requests,
            i.uptime.as_secs()
        );
        if let Some(c) = &i.current {
            let _ = write!(
                out,
                ", {} {} from {} for {:.1}s",
                c.method,
                c.uri,
                c.client,
                c.since.elapsed().as_secs_f64()
            );
        }
        out.push('\n');
    }
}

/// The response counts of an app (pool or CGI), when it has any.
fn counts_text(out: &mut String, app: &AppReport) {
    if let Some([c1, c2, c3, c4, c5]) = app.responses {
        let _ = writeln!(
            out,
            "  responses 1xx {c1}, 2xx {c2}, 3xx {c3}, 4xx {c4}, 5xx {c5}"
        );
    }
    if let Some(failures) = &app.failures {
        let parts: Vec<String> = failures
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(cause, n)| format!("{} {n}", cause.as_str()))
            .collect();
        if !parts.is_empty() {
            let _ = writeln!(out, "  5xx by cause: {}", parts.join(", "));
        }
    }
}

/// Processes of a pool by state.
struct Counts {
    total: usize,
    idle: usize,
    busy: usize,
    starting: usize,
    stopping: usize,
}

impl Counts {
    fn of(pool: &PoolSnapshot) -> Counts {
        use crate::pool::InstanceState as S;
        let count = |state| pool.instances.iter().filter(|i| i.state == state).count();
        Counts {
            total: pool.instances.len(),
            idle: count(S::Idle),
            busy: count(S::Busy),
            starting: count(S::Starting),
            stopping: count(S::Stopping),
        }
    }
}

fn state_text(pool: &PoolSnapshot) -> String {
    match pool.offline {
        Some(Offline::RapidFails { until }) => format!(
            "offline after rapid failures for {}s more (rapid_fails_per_minute)",
            left(until).as_secs()
        ),
        Some(Offline::Manual { since }) => format!(
            "offline, taken offline on the admin listener {}s ago (POST /apps/NAME/online)",
            ago(since).as_secs()
        ),
        None => "running".to_string(),
    }
}

fn ago(at: SystemTime) -> Duration {
    SystemTime::now().duration_since(at).unwrap_or_default()
}

fn left(until: SystemTime) -> Duration {
    until.duration_since(SystemTime::now()).unwrap_or_default()
}

/// Seconds since the Unix epoch, for JSON.
fn unix(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn app_json(app: &AppReport) -> Value {
    let mut json = match &app.pool {
        Some(pool) => pool_json(&app.name, pool),
        None => json!({ "name": app.name, "kind": "cgi" }),
    };
    if let Some(counts) = app.responses {
        json["responses"] = json!({
            "1xx": counts[0], "2xx": counts[1], "3xx": counts[2],
            "4xx": counts[3], "5xx": counts[4],
        });
    }
    if let Some(failures) = &app.failures {
        let by_cause: Map<String, Value> = failures
            .iter()
            .map(|(cause, n)| (cause.as_str().to_string(), json!(n)))
            .collect();
        json["failures"] = Value::Object(by_cause);
    }
    json
}

fn offline_json(offline: Option<Offline>) -> Value {
    match offline {
        None => Value::Null,
        Some(Offline::Manual { since }) => json!({
            "kind": "manual", "since": unix(since), "until": null,
        }),
        Some(Offline::RapidFails { until }) => json!({
            "kind": "rapid_fails", "until": unix(until),
            "seconds_left": left(until).as_secs(),
        }),
    }
}

fn last_exit_json(exit: &LastExit) -> Value {
    json!({
        "pid": exit.pid,
        "reason": exit.reason.as_str(),
        "status": exit.status,
        "at": unix(exit.at),
    })
}

fn instance_json(i: &InstanceInfo) -> Value {
    let current = i.current.as_ref().map(|c| {
        json!({
            "method": c.method.as_ref(),
            "uri": c.uri.as_ref(),
            "client": c.client.as_ref(),
            "running_seconds": c.since.elapsed().as_secs_f64(),
        })
    });
    json!({
        "pid": i.pid,
        "state": i.state.as_str(),
        "requests": i.requests,
        "rss_kib": i.rss_kib,
        "uptime_seconds": i.uptime.as_secs(),
        "current": current,
    })
}

fn pool_json(name: &str, pool: &PoolSnapshot) -> Value {
    let s = &pool.status;
    let counts = Counts::of(pool);
    let exits: Map<String, Value> = pool
        .exits
        .iter()
        .map(|(reason, n)| (reason.as_str().to_string(), json!(n)))
        .collect();
    let offline_for = match pool.offline {
        Some(Offline::RapidFails { until }) => Some(left(until).as_secs()),
        _ => None,
    };
    json!({
        "name": name,
        "kind": "pool",
        "state": if pool.offline.is_some() { "offline" } else { "running" },
        "offline": offline_json(pool.offline),
        "offline_for_seconds": offline_for,
        "max_instances": s.limit,
        "automatic_sizing": pool.automatic,
        "instances": {
            "total": counts.total,
            "idle": counts.idle,
            "busy": counts.busy,
            "starting": counts.starting,
            "stopping": counts.stopping,
        },
        "queue": { "waiting": s.waiting, "most": pool.most_waiting },
        "request_crashes": s.request_crashes,
        "bad_answers": s.bad_answers,
        "rapid_fails": {
            "last_minute": pool.rapid_fails_last_minute,
            "total": pool.rapid_fails_total,
        },
        "spawns": pool.spawns,
        "exits": exits,
        "last_exit": pool.last_exit.as_ref().map(last_exit_json),
        "processes": pool.instances.iter().map(instance_json).collect::<Vec<_>>(),
    })
}
