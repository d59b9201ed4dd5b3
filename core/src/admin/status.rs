//! `/status`: every app's pool and processes, as JSON for tools and as
//! text for people (`?format=text`). Built from one snapshot per pool.

use std::fmt::Write;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::app::Apps;
use crate::metrics::Metrics;
use crate::pool::PoolSnapshot;

/// The state of the gateway at one moment.
pub(super) struct Report {
    uptime_secs: u64,
    apps: Vec<(String, Option<PoolSnapshot>, Option<[u64; 5]>)>,
}

impl Report {
    pub(super) fn take(apps: &Apps, metrics: &Metrics, started: Instant) -> Report {
        Report {
            uptime_secs: started.elapsed().as_secs(),
            apps: apps
                .with_pools()
                .map(|(name, pool)| {
                    (
                        name.to_string(),
                        pool.map(|p| p.snapshot()),
                        metrics.responses(name),
                    )
                })
                .collect(),
        }
    }

    pub(super) fn to_json(&self) -> String {
        let apps: Vec<Value> = self
            .apps
            .iter()
            .map(|(name, pool, responses)| {
                let mut app = match pool {
                    Some(pool) => pool_json(name, pool),
                    None => json!({ "name": name, "kind": "cgi" }),
                };
                if let Some(counts) = responses {
                    app["responses"] = json!({
                        "1xx": counts[0], "2xx": counts[1], "3xx": counts[2],
                        "4xx": counts[3], "5xx": counts[4],
                    });
                }
                app
            })
            .collect();
        let report = json!({ "uptime_seconds": self.uptime_secs, "apps": apps });
        let mut text = report.to_string();
        text.push('\n');
        text
    }

    pub(super) fn to_text(&self) -> String {
        let mut out = format!("uptime {}s\n", self.uptime_secs);
        for (name, pool, responses) in &self.apps {
            let Some(pool) = pool else {
                let _ = writeln!(out, "\napp {name}: cgi (a process per request)");
                continue;
            };
            let s = &pool.status;
            let counts = Counts::of(pool);
            let _ = writeln!(
                out,
                "\napp {name}: {}\n  instances {} (idle {}, busy {}, starting {}, stopping {}), max {}{}\n  waiting {} (most {}), request crashes {}, bad answers {}",
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
                s.bad_answers
            );
            if let Some([c1, c2, c3, c4, c5]) = responses {
                let _ = writeln!(
                    out,
                    "  responses 1xx {c1}, 2xx {c2}, 3xx {c3}, 4xx {c4}, 5xx {c5}"
                );
            }
            for i in &pool.instances {
                let rss = i.rss_kib.map_or("-".to_string(), |k| format!("{k} KiB"));
                let _ = writeln!(
                    out,
                    "  pid {:>7}  {:<8}  {} requests, rss {rss}",
                    i.pid,
                    i.state.as_str(),
                    i.requests
                );
            }
        }
        out
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
    match pool.offline_for {
        Some(left) => format!(
            "offline after rapid failures for {}s more (rapid_fails_per_minute)",
            left.as_secs()
        ),
        None => "running".to_string(),
    }
}

fn pool_json(name: &str, pool: &PoolSnapshot) -> Value {
    let s = &pool.status;
    let counts = Counts::of(pool);
    let instances: Vec<Value> = pool
        .instances
        .iter()
        .map(|i| json!({ "pid": i.pid, "state": i.state.as_str(), "requests": i.requests, "rss_kib": i.rss_kib }))
        .collect();
    json!({
        "name": name,
        "kind": "pool",
        "state": if pool.offline_for.is_some() { "offline" } else { "running" },
        "offline_for_seconds": pool.offline_for.map(|d| d.as_secs()),
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
        "processes": instances,
    })
}
