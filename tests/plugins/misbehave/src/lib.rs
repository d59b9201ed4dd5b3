//! A plugin that misbehaves on request, for the gateway's tests. Every
//! path below `/misbehave/` does something bad; other requests continue.
//!
//! - `/misbehave/loop`: never returns (the wasm deadline must stop it);
//! - `/misbehave/bomb`: allocates until memory runs out (the cap must stop it);
//! - `/misbehave/trap`: logs `instance <id> traps now`, then traps (wasm)
//!   or panics (native);
//! - `/misbehave/panic`: panics;
//! - `/misbehave/count`: answers `id=<instance id> count=<requests it saw>`;
//! - `/misbehave/log`: writes a log line through the host, then continues;
//! - `/misbehave/env`, `/misbehave/file`, `/misbehave/net`: try the
//!   environment, a file and a socket, and answer what happened;
//! - any path with `misbehave=head` in its query: answers with every field
//!   of the request head as the plugin saw it, one per line;
//! - `misbehave=user`: continues with `REMOTE_USER=alice` and
//!   `AUTH_TYPE=Bearer` for the app; `misbehave=user-rewrite`: a rewrite
//!   that removes the `Authorization` header and gives `REMOTE_USER=bob`;
//!   `misbehave=forge`: continues with `SCRIPT_FILENAME=/etc/passwd` (the
//!   gateway must refuse it);
//! - config `fail_init = "..."`: `init` refuses with that message;
//! - config `busy_ns = N`: every request first costs N ns of busy CPU
//!   (tests/bench/plugin_overhead.sh's calibration).
//!
//! It is also a launcher: it starts the suite's FastCGI test program
//! (tests/fixtures/fcgi_app.py, shipped inside the plugin and written to the
//! app's runtime directory) for `/py/*`. Options: `args` (extra arguments);
//! `instance_max_requests`, `min_instances` and `dirs`, proposed as they are
//! (so the tests can give the gateway bad proposals); `stderr_mode`
//! (`"ignore-and-return-200"`, ...) proposed as it is; `required`, paths
//! proposed as required (with the purpose `the required option`).

use std::sync::atomic::{AtomicU64, Ordering};

use fastgate_sdk::{
    AppConfig, Capabilities, Decision, Level, MappingDefaults, Param, Plugin, PoolDefaults,
    RequestHead, RequiredPath, Response, Rewrite, RuntimeFile, SpawnSpec, StderrMode,
    export_plugin, log, parse_config,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    fail_init: Option<String>,
    /// Busy-waits this long in every `on_request` (benchmark calibration:
    /// what a given amount of plugin work costs the gateway).
    #[serde(default)]
    busy_ns: u64,
}

struct Misbehave {
    /// A random id, to tell instances apart.
    id: u64,
    seen: AtomicU64,
    busy: std::time::Duration,
}

impl Plugin for Misbehave {
    fn init(config: &str) -> Result<Self, String> {
        let config: Config = parse_config(config)?;
        if let Some(message) = config.fail_init {
            return Err(message);
        }
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u8(0);
        Ok(Misbehave {
            id: hasher.finish(),
            seen: AtomicU64::new(0),
            busy: std::time::Duration::from_nanos(config.busy_ns),
        })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::REQUEST_FILTER.with(Capabilities::LAUNCHER)
    }

    fn launch(&self, app: &AppConfig) -> Result<SpawnSpec, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Options {
            #[serde(default)]
            args: Vec<String>,
            instance_max_requests: Option<u64>,
            min_instances: Option<u32>,
            #[serde(default)]
            dirs: Vec<String>,
            stderr_mode: Option<String>,
            #[serde(default)]
            required: Vec<String>,
        }
        let options: Options = parse_config(&app.options)?;
        let stderr_mode = match options.stderr_mode.as_deref() {
            None => None,
            Some("return-stderr-in-500") => Some(StderrMode::ReturnStderrIn500),
            Some("return-generic-500") => Some(StderrMode::ReturnGeneric500),
            Some("ignore-and-return-200") => Some(StderrMode::IgnoreAndReturn200),
            Some("terminate-process") => Some(StderrMode::TerminateProcess),
            Some(other) => return Err(format!("unknown stderr_mode {other:?}")),
        };
        let mut args = vec!["{runtime_dir}/fcgi_app.py".to_string()];
        args.extend(options.args);
        Ok(SpawnSpec {
            command: app.command.clone().unwrap_or_else(|| "python3".to_string()),
            args,
            env: vec![(
                "PATH".to_string(),
                "/usr/local/bin:/usr/bin:/bin".to_string(),
            )],
            files: vec![RuntimeFile {
                name: "fcgi_app.py".to_string(),
                contents: include_bytes!("../../../fixtures/fcgi_app.py").to_vec(),
                executable: false,
            }],
            mapping: MappingDefaults {
                handles: vec!["/py/*".to_string()],
                resource_type: Some("unspecified".to_string()),
                ..MappingDefaults::default()
            },
            pool: PoolDefaults {
                instance_max_requests: options.instance_max_requests,
                min_instances: options.min_instances,
                stderr_mode,
            },
            dirs: options.dirs,
            required_paths: options
                .required
                .iter()
                .map(|p| RequiredPath::new(app.path(p), "the required option"))
                .collect(),
            ..SpawnSpec::default()
        })
    }

    fn on_request(&self, request: &RequestHead<'_>) -> Decision {
        let seen = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        if !self.busy.is_zero() {
            let start = std::time::Instant::now();
            while start.elapsed() < self.busy {
                std::hint::spin_loop();
            }
        }
        for asked in request.query.split('&') {
            match asked {
                "misbehave=head" => {
                    return Decision::Respond(Response::text(200, describe(request)));
                }
                "misbehave=user" => {
                    return Decision::ContinueWith(vec![
                        Param::new("REMOTE_USER", "alice"),
                        Param::new("AUTH_TYPE", "Bearer"),
                    ]);
                }
                "misbehave=user-rewrite" => {
                    return Decision::Rewrite(Rewrite {
                        remove_headers: vec!["authorization".to_string()],
                        params: vec![Param::new("REMOTE_USER", "bob")],
                        ..Rewrite::default()
                    });
                }
                "misbehave=forge" => {
                    return Decision::ContinueWith(vec![Param::new(
                        "SCRIPT_FILENAME",
                        "/etc/passwd",
                    )]);
                }
                _ => {}
            }
        }
        match request.path {
            "/misbehave/loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "/misbehave/bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "/misbehave/trap" => {
                log(Level::Warn, &format!("instance {} traps now", self.id));
                trap()
            }
            "/misbehave/panic" => panic!("misbehaving on purpose"),
            "/misbehave/count" => {
                Decision::Respond(Response::text(200, format!("id={} count={seen}", self.id)))
            }
            "/misbehave/log" => {
                log(Level::Warn, "misbehave says hello through the host");
                Decision::Continue
            }
            // What the sandbox lets through: the environment (empty in a
            // wasm build), a file, a socket.
            "/misbehave/env" => Decision::Respond(Response::text(
                200,
                format!("env={}", std::env::vars().count()),
            )),
            "/misbehave/file" => Decision::Respond(Response::text(
                200,
                format!("{:?}", std::fs::read("/etc/hostname").map(|b| b.len())),
            )),
            "/misbehave/net" => Decision::Respond(Response::text(
                200,
                format!(
                    "{:?}",
                    std::net::TcpStream::connect("127.0.0.1:1").map(drop)
                ),
            )),
            _ => Decision::Continue,
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn trap() -> Decision {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
fn trap() -> Decision {
    panic!("trap requested (native build: a panic)")
}

/// Every field of `request`, one per line; header values escaped.
fn describe(request: &RequestHead<'_>) -> String {
    let mut out = format!(
        "method={}\npath={}\nraw_path={}\nquery={}\nversion={}\nclient={}\nserver={}\napp={}\nheaders={}\n",
        request.method,
        request.path,
        request.raw_path,
        request.query,
        request.version,
        request.client_addr,
        request.server_addr,
        request.app,
        request.headers.len(),
    );
    for (name, value) in request.headers {
        out.push_str(&format!("{name}: {}\n", value.escape_ascii()));
    }
    out
}

export_plugin!(Misbehave);
