//! WebAssembly component plugins, run by wasmtime.
//!
//! A plugin is compiled once at load. Each call borrows a warm instance
//! from a small per-plugin pool (instantiating costs tens of microseconds, a
//! warm call about one), runs under an epoch deadline and a memory cap, and
//! gives the instance back. After any trap (deadline, memory, a panic in
//! the plugin) the instance is dropped, never reused: a trapped instance's
//! memory may be in any state.
//!
//! Sandbox: of WASI, a plugin gets only what pure code needs: clocks,
//! random numbers, and an empty environment and argument list. Every other
//! import it declares (stdio streams, files, sockets, `poll`, `exit`) is
//! linked to a function that traps with a message naming it, so a plugin
//! that tries I/O loses its instance instead of reaching the host. Plugins
//! log through the `host.log` import. (wasmtime-wasi is deliberately not
//! used: its synchronous bindings block on a Tokio runtime, which panics on
//! the gateway's worker threads, and the sandbox needs none of it.)
//!
//! Deadlines use wasmtime's epoch interruption: one ticker thread bumps the
//! engine's epoch every 2 ms while plugins are being called, and parks
//! after a second without calls, so an idle gateway does not wake up. A
//! call is stopped between its `timeout` and one tick later, never before.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use fastgate_sdk as sdk;
use tracing::{debug, error, info, trace, warn};
use wasmtime::component::{Component, ComponentType, HasSelf, Linker, Lower};
use wasmtime::{Engine, ResourceLimiter, Store};

use super::{Backend, PluginError, RequestView};
use crate::cgi::params::Params;
use crate::config::PluginConfig;
use http::HeaderMap;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "plugin",
        // Arguments are lowered straight from borrowed gateway data: no
        // copy of the request head on the host side.
        ownership: Borrowing { duplicate_if_necessary: true },
    });
}

use bindings::fastgate::plugin::{host, types as wit};

/// How often the epoch advances while plugins run.
const TICK: Duration = Duration::from_millis(2);
/// Ticks without a call before the ticker parks (one second).
const PARK_AFTER_TICKS: u32 = 500;
/// `init` may take longer than a hook (it parses config once per instance).
const INIT_DEADLINE: Duration = Duration::from_secs(1);

/// The engine shared by every wasm plugin, and its epoch ticker.
struct Runtime {
    engine: Engine,
    ticker: Arc<Ticker>,
}

fn runtime() -> Result<&'static Runtime, PluginError> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let mut config = wasmtime::Config::new();
            config.wasm_component_model(true);
            config.epoch_interruption(true);
            let engine = Engine::new(&config).map_err(|e| format!("{e:#}"))?;
            let ticker = Ticker::start(engine.clone()).map_err(|e| e.to_string())?;
            Ok(Runtime { engine, ticker })
        })
        .as_ref()
        .map_err(|reason| PluginError::Load {
            path: "(wasm runtime)".to_string(),
            reason: reason.clone(),
        })
}

/// Advances the engine's epoch while calls are in flight.
struct Ticker {
    engine: Engine,
    /// Calls started so far (the ticker parks when this stops moving).
    calls: AtomicU64,
    /// Calls running now.
    active: AtomicU64,
    parked: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Ticker {
    fn start(engine: Engine) -> std::io::Result<Arc<Ticker>> {
        let ticker = Arc::new(Ticker {
            engine,
            calls: AtomicU64::new(0),
            active: AtomicU64::new(0),
            parked: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let t = ticker.clone();
        std::thread::Builder::new()
            .name("fastgate-wasm-epoch".to_string())
            .spawn(move || t.run())?;
        Ok(ticker)
    }

    fn run(&self) {
        let mut seen = self.calls.load(SeqCst);
        let mut quiet = 0;
        loop {
            std::thread::sleep(TICK);
            self.engine.increment_epoch();
            let now = self.calls.load(SeqCst);
            if now != seen || self.active.load(SeqCst) > 0 {
                seen = now;
                quiet = 0;
                continue;
            }
            quiet += 1;
            if quiet < PARK_AFTER_TICKS {
                continue;
            }
            // Park. A caller increments `calls`/`active` before it looks at
            // `parked` (both SeqCst), so either it sees `parked` and wakes us,
            // or we see its call here and do not park.
            let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.parked.store(true, SeqCst);
            if self.calls.load(SeqCst) != seen || self.active.load(SeqCst) > 0 {
                self.parked.store(false, SeqCst);
                continue;
            }
            trace!("wasm epoch ticker parked");
            while self.parked.load(SeqCst) {
                guard = self.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
            drop(guard);
            seen = self.calls.load(SeqCst);
            quiet = 0;
        }
    }

    /// Marks a call as running (until the guard drops) and makes sure the
    /// epoch is advancing.
    fn enter(&self) -> Active<'_> {
        self.calls.fetch_add(1, SeqCst);
        self.active.fetch_add(1, SeqCst);
        if self.parked.load(SeqCst) {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.parked.store(false, SeqCst);
            self.wake.notify_one();
        }
        Active(self)
    }
}

struct Active<'a>(&'a Ticker);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, SeqCst);
    }
}

/// The state of one instance's store.
struct InstanceState {
    plugin: Arc<str>,
    limits: Limits,
}

/// Caps linear memory and remembers whether the cap was hit, so that the
/// trap that follows can be reported as what it is.
struct Limits {
    memory: u64,
    hit: bool,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

impl host::Host for InstanceState {
    fn log(&mut self, level: host::Level, message: String) {
        let plugin = &*self.plugin;
        match level {
            host::Level::Error => error!(plugin, "{message}"),
            host::Level::Warn => warn!(plugin, "{message}"),
            host::Level::Info => info!(plugin, "{message}"),
            host::Level::Debug => debug!(plugin, "{message}"),
            host::Level::Trace => trace!(plugin, "{message}"),
        }
    }
}

impl wit::Host for InstanceState {}

/// A warm instance.
struct Instance {
    store: Store<InstanceState>,
    bindings: bindings::Plugin,
}

pub struct WasmPlugin {
    name: Arc<str>,
    pre: bindings::PluginPre<InstanceState>,
    config_json: String,
    deadline: Duration,
    deadline_ticks: u64,
    memory_limit: u64,
    idle: Mutex<Vec<Instance>>,
    max_idle: usize,
    ticker: Arc<Ticker>,
}

impl WasmPlugin {
    /// Compiles the component, links it, and creates the first instance
    /// (whose `init` tells the capabilities and validates the config).
    pub fn load(config: &PluginConfig) -> Result<(WasmPlugin, sdk::Capabilities), PluginError> {
        let runtime = runtime()?;
        let load_error = |reason: String| PluginError::Load {
            path: config.path.display().to_string(),
            reason,
        };
        let bytes = std::fs::read(&config.path).map_err(|e| load_error(e.to_string()))?;
        let component = Component::new(&runtime.engine, &bytes).map_err(|e| {
            load_error(format!(
                "not a WebAssembly component for this gateway: {e:#}"
            ))
        })?;
        let mut linker: Linker<InstanceState> = Linker::new(&runtime.engine);
        bindings::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| load_error(format!("{e:#}")))?;
        define_pure_wasi(&mut linker, &component, &runtime.engine)
            .map_err(|e| load_error(format!("{e:#}")))?;
        linker
            .define_unknown_imports_as_traps(&component)
            .map_err(|e| load_error(format!("{e:#}")))?;
        let instance_pre = linker.instantiate_pre(&component).map_err(|e| {
            load_error(format!(
                "its imports do not match this gateway's (fastgate:plugin@{}): {e:#}",
                sdk::CONTRACT_VERSION
            ))
        })?;
        let pre = bindings::PluginPre::new(instance_pre).map_err(|e| {
            load_error(format!(
                "its exports do not match the plugin world (fastgate:plugin@{}): {e:#}",
                sdk::CONTRACT_VERSION
            ))
        })?;
        let tick_us = TICK.as_micros() as u64;
        let plugin = WasmPlugin {
            name: Arc::from(config.name.as_str()),
            pre,
            config_json: config.config_json.clone(),
            deadline: config.timeout,
            // The first tick comes anywhere within one period: one more.
            deadline_ticks: (config.timeout.as_micros() as u64).div_ceil(tick_us) + 1,
            memory_limit: config.memory_limit,
            idle: Mutex::new(Vec::new()),
            max_idle: config.instances,
            ticker: runtime.ticker.clone(),
        };
        let (instance, capabilities) = plugin.instantiate()?;
        plugin.give_back(instance);
        Ok((plugin, capabilities))
    }

    fn instantiate(&self) -> Result<(Instance, sdk::Capabilities), PluginError> {
        let state = InstanceState {
            plugin: self.name.clone(),
            limits: Limits {
                memory: self.memory_limit,
                hit: false,
            },
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline((INIT_DEADLINE.as_micros() / TICK.as_micros()) as u64 + 1);
        let _active = self.ticker.enter();
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| self.trap(&store, e))?;
        let capabilities = match bindings.call_init(&mut store, &self.config_json) {
            Ok(Ok(caps)) => sdk::Capabilities {
                request_filter: caps.contains(wit::Capabilities::REQUEST_FILTER),
                response_filter: caps.contains(wit::Capabilities::RESPONSE_FILTER),
                inject_env: caps.contains(wit::Capabilities::INJECT_ENV),
                launcher: caps.contains(wit::Capabilities::LAUNCHER),
            },
            Ok(Err(message)) => return Err(PluginError::Init(message)),
            Err(e) => return Err(self.trap(&store, e)),
        };
        Ok((Instance { store, bindings }, capabilities))
    }

    fn give_back(&self, instance: Instance) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(instance);
        }
    }

    /// Names a trap: deadline, memory cap, or the trap itself.
    fn trap(&self, store: &Store<InstanceState>, error: wasmtime::Error) -> PluginError {
        if let Some(wasmtime::Trap::Interrupt) = error.downcast_ref::<wasmtime::Trap>() {
            return PluginError::Deadline(self.deadline);
        }
        if store.data().limits.hit {
            return PluginError::MemoryLimit(self.memory_limit);
        }
        let text = format!("{error:#}");
        if let Some(import) = text
            .split("unknown import: `")
            .nth(1)
            .and_then(|rest| rest.split('`').next())
        {
            return PluginError::Trap(format!(
                "it called `{import}`, which plugins do not have (no stdio, files, network or \
                 blocking; log with fastgate_sdk::log)"
            ));
        }
        PluginError::Trap(text)
    }

    /// Runs one hook on a warm instance. The instance goes back to the pool
    /// only if the call returned normally.
    fn call<R>(
        &self,
        f: impl FnOnce(&mut Store<InstanceState>, &bindings::Plugin) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let warm = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut instance = match warm {
            Some(instance) => instance,
            None => self.instantiate()?.0,
        };
        instance.store.set_epoch_deadline(self.deadline_ticks);
        let result = {
            let _active = self.ticker.enter();
            f(&mut instance.store, &instance.bindings)
        };
        match result {
            Ok(value) => {
                self.give_back(instance);
                Ok(value)
            }
            Err(e) => {
                let error = self.trap(&instance.store, e);
                warn!(plugin = %self.name, error = %error, "wasm instance discarded after a trap");
                Err(error)
            }
        }
    }
}

impl Backend for WasmPlugin {
    fn on_request(&self, request: &RequestView<'_>) -> Result<sdk::Decision, PluginError> {
        let headers = headers_to_wit(request.headers);
        let head = request_to_wit(request, &headers);
        let decision = self.call(|store, b| b.call_on_request(store, head))?;
        Ok(match decision {
            wit::Decision::Continue => sdk::Decision::Continue,
            wit::Decision::Deny(status) => sdk::Decision::Deny(status),
            wit::Decision::Respond(r) => sdk::Decision::Respond(sdk::Response {
                status: r.status,
                headers: headers_from_wit(r.headers),
                body: r.body,
            }),
            wit::Decision::Rewrite(r) => sdk::Decision::Rewrite(sdk::Rewrite {
                path: r.path,
                set_headers: headers_from_wit(r.set_headers),
                remove_headers: r.remove_headers,
            }),
        })
    }

    fn on_response(
        &self,
        status: u16,
        headers: &HeaderMap,
    ) -> Result<sdk::HeaderChanges, PluginError> {
        let headers = headers_to_wit(headers);
        let changes = self.call(|store, b| b.call_on_response(store, status, &headers))?;
        Ok(sdk::HeaderChanges {
            set: headers_from_wit(changes.set),
            append: headers_from_wit(changes.append),
            remove: changes.remove,
        })
    }

    fn inject_env(
        &self,
        request: &RequestView<'_>,
        params: &Params,
    ) -> Result<Vec<sdk::Param>, PluginError> {
        let headers = headers_to_wit(request.headers);
        let head = request_to_wit(request, &headers);
        // Parameter names are ASCII in practice; one that is not UTF-8 is
        // not shown to plugins.
        let params: Vec<wit::ParamParam<'_>> = params
            .iter()
            .filter_map(|(name, value)| {
                Some(wit::ParamParam {
                    name: std::str::from_utf8(name).ok()?,
                    value,
                })
            })
            .collect();
        let extra = self.call(|store, b| b.call_inject_env(store, head, &params))?;
        Ok(extra
            .into_iter()
            .map(|p| sdk::Param {
                name: p.name,
                value: p.value,
            })
            .collect())
    }

    fn launch(&self, app: &sdk::AppConfig) -> Result<Result<sdk::SpawnSpec, String>, PluginError> {
        let args: Vec<&str> = app.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = app
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let app = wit::AppConfig {
            name: &app.name,
            options: &app.options,
            command: app.command.as_deref(),
            args: &args,
            env: &env,
            root: &app.root,
            instance_max_requests: app.instance_max_requests,
        };
        let spec = self.call(|store, b| b.call_launch(store, app))?;
        Ok(spec.map(|s| sdk::SpawnSpec {
            command: s.command,
            args: s.args,
            env: s.env,
            working_dir: s.working_dir,
            files: s
                .files
                .into_iter()
                .map(|f| sdk::RuntimeFile {
                    name: f.name,
                    contents: f.contents,
                    executable: f.executable,
                })
                .collect(),
            protocol: match s.protocol {
                wit::AppProtocol::Fastcgi => sdk::AppProtocol::FastCgi,
                wit::AppProtocol::Cgi => sdk::AppProtocol::Cgi,
            },
            params: s.params,
            mapping: sdk::MappingDefaults {
                handles: s.mapping.handles,
                resource_type: s.mapping.resource_type,
                fallback: s.mapping.fallback,
                static_dirs: s.mapping.static_dirs,
            },
        }))
    }
}

/// The headers, borrowed (one allocation: the list itself).
fn headers_to_wit(headers: &HeaderMap) -> Vec<wit::HeaderParam<'_>> {
    headers
        .iter()
        .map(|(n, v)| wit::HeaderParam {
            name: n.as_str(),
            value: v.as_bytes(),
        })
        .collect()
}

fn request_to_wit<'a>(
    r: &RequestView<'a>,
    headers: &'a [wit::HeaderParam<'a>],
) -> wit::RequestHead<'a> {
    wit::RequestHead {
        method: r.method,
        path: r.path,
        query: r.query,
        version: r.version,
        headers,
        client_addr: r.client_addr,
        server_addr: r.server_addr,
        app: r.app,
    }
}

fn headers_from_wit(headers: Vec<wit::HeaderResult>) -> Vec<sdk::Header> {
    headers
        .into_iter()
        .map(|h| sdk::Header {
            name: h.name,
            value: h.value,
        })
        .collect()
}

/// `wasi:clocks/wall-clock.datetime`.
#[derive(ComponentType, Lower, Clone, Copy)]
#[component(record)]
struct Datetime {
    seconds: u64,
    nanoseconds: u32,
}

/// Defines the WASI functions that pure code needs (clocks, random numbers,
/// an empty environment) for whatever versions of those interfaces the
/// component imports. Everything else is left to trap.
fn define_pure_wasi(
    linker: &mut Linker<InstanceState>,
    component: &Component,
    engine: &Engine,
) -> wasmtime::Result<()> {
    let names: Vec<String> = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    for name in names {
        let interface = name.split('@').next().unwrap_or("");
        match interface {
            "wasi:random/random" => {
                let mut i = linker.instance(&name)?;
                i.func_wrap("get-random-bytes", |_, (len,): (u64,)| {
                    Ok((random_bytes(len),))
                })?;
                i.func_wrap("get-random-u64", |_, (): ()| Ok((random_u64(),)))?;
            }
            "wasi:random/insecure" => {
                let mut i = linker.instance(&name)?;
                i.func_wrap("get-insecure-random-bytes", |_, (len,): (u64,)| {
                    Ok((random_bytes(len),))
                })?;
                i.func_wrap("get-insecure-random-u64", |_, (): ()| Ok((random_u64(),)))?;
            }
            "wasi:random/insecure-seed" => {
                let mut i = linker.instance(&name)?;
                i.func_wrap("insecure-seed", |_, (): ()| {
                    Ok(((random_u64(), random_u64()),))
                })?;
            }
            "wasi:clocks/monotonic-clock" => {
                let mut i = linker.instance(&name)?;
                i.func_wrap("now", |_, (): ()| Ok((monotonic_nanos(),)))?;
                i.func_wrap("resolution", |_, (): ()| Ok((1u64,)))?;
            }
            "wasi:clocks/wall-clock" => {
                let mut i = linker.instance(&name)?;
                i.func_wrap("now", |_, (): ()| {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default();
                    Ok((Datetime {
                        seconds: now.as_secs(),
                        nanoseconds: now.subsec_nanos(),
                    },))
                })?;
                i.func_wrap("resolution", |_, (): ()| {
                    Ok((Datetime {
                        seconds: 0,
                        nanoseconds: 1,
                    },))
                })?;
            }
            "wasi:cli/environment" => {
                let mut i = linker.instance(&name)?;
                i.func_wrap("get-environment", |_, (): ()| {
                    Ok((Vec::<(String, String)>::new(),))
                })?;
                i.func_wrap("get-arguments", |_, (): ()| Ok((Vec::<String>::new(),)))?;
                i.func_wrap("initial-cwd", |_, (): ()| Ok((None::<String>,)))?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn monotonic_nanos() -> u64 {
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}

/// Random numbers from the standard library's per-process random keys,
/// stirred with a counter: good enough for hash seeds, which is what plugin
/// code asks for. Plugins needing key material should not be plugins.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, SeqCst));
    hasher.write_u64(monotonic_nanos());
    hasher.finish()
}

fn random_bytes(len: u64) -> Vec<u8> {
    // A guest asking for more than a megabyte at once is not after a seed.
    let len = len.min(1 << 20) as usize;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&random_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}
