//! WebAssembly component plugins, run by wasmtime.
//!
//! A plugin is compiled once at load. Each call borrows a warm instance
//! from a small per-plugin pool (instantiating costs tens of microseconds, a
//! warm call about one), runs under a fuel budget and a memory cap, and
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
//! Deadlines are fuel: a call gets an instruction budget worth its
//! `timeout` ([`FUEL_PER_MS`] wasm instructions per millisecond). A plugin
//! cannot block (it has no blocking import), so burning instructions is the
//! only way it can take time, and a budget stops a runaway loop with no
//! timer thread at all. Epoch interruption was measured too: a warm call
//! is about 10 % cheaper with it, but a cold one (as calls run inside the
//! loaded gateway) costs the same as with fuel, an always-running ticker
//! thread (even at one tick per 5 ms) cost the gateway more CPU per request
//! under load on the 2-core benchmark machine than fuel did, and a ticker
//! that only runs while calls are in progress measured the same as fuel
//! (docs/benchmarks.md); fuel needs no thread.
//!
//! Contract versions: a component says which contract it was built for by
//! the version of the contract interfaces it imports. The host binds both
//! worlds it speaks, the current one (`sdk/wit`) and 0.1.0
//! (`sdk/wit-0.1.0`, [`v0_1`]), and instantiates each component through
//! the bindings of its version, converting the old records to the SDK's
//! current types. Any other version is refused at load, naming both.

mod v0_1;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use fastgate_sdk as sdk;
use tracing::{debug, error, info, trace, warn};
use wasmtime::component::{Component, ComponentType, HasSelf, Linker, Lower};
use wasmtime::{Engine, ResourceLimiter, Store};

use super::{Backend, Contract, PluginError, RequestView, header_pairs, put_params, put_request};
use crate::cgi::params::Params;
use crate::config::PluginSettings;
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

/// The fuel a call gets per millisecond of `timeout`: about what one core
/// of the project's machine runs in a millisecond of tight plugin code
/// (tests/plugins/misbehave's busy loop: a 50 ms budget stopped it after
/// 48-65 ms, the default 10 ms after 8-14 ms). Code heavier in memory
/// access runs fewer instructions per millisecond, so it may run somewhat
/// past `timeout` before it is stopped.
pub const FUEL_PER_MS: u64 = 10_000_000;
/// `init` may take longer than a hook (it parses config once per instance).
const INIT_DEADLINE: Duration = Duration::from_secs(1);

/// The engine shared by every wasm plugin.
fn engine() -> Result<&'static Engine, PluginError> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut config = wasmtime::Config::new();
            config.wasm_component_model(true);
            config.consume_fuel(true);
            config.cache(super::wasm_cache::cache());
            Engine::new(&config).map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(|reason| PluginError::Load {
            path: "(wasm runtime)".to_string(),
            reason: reason.clone(),
        })
}

fn fuel_for(d: Duration) -> u64 {
    (d.as_micros() as u64).saturating_mul(FUEL_PER_MS) / 1000
}

/// The state of one instance's store.
struct InstanceState {
    plugin: Arc<str>,
    limits: MemoryCap,
}

impl InstanceState {
    /// `host.log`, whatever the contract version.
    fn log(&self, level: sdk::Level, message: &str) {
        let plugin = &*self.plugin;
        match level {
            sdk::Level::Error => error!(plugin, "{message}"),
            sdk::Level::Warn => warn!(plugin, "{message}"),
            sdk::Level::Info => info!(plugin, "{message}"),
            sdk::Level::Debug => debug!(plugin, "{message}"),
            sdk::Level::Trace => trace!(plugin, "{message}"),
        }
    }
}

/// Caps linear memory and remembers whether the cap was hit, so that the
/// trap that follows can be reported as what it is.
struct MemoryCap {
    memory: u64,
    hit: bool,
}

impl ResourceLimiter for MemoryCap {
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
        let level = match level {
            host::Level::Error => sdk::Level::Error,
            host::Level::Warn => sdk::Level::Warn,
            host::Level::Info => sdk::Level::Info,
            host::Level::Debug => sdk::Level::Debug,
            host::Level::Trace => sdk::Level::Trace,
        };
        InstanceState::log(self, level, &message);
    }
}

impl wit::Host for InstanceState {}

/// A linked component, ready to instantiate, in the bindings of its
/// contract version.
enum Pre {
    Current(bindings::PluginPre<InstanceState>),
    V0_1(v0_1::Pre),
}

/// An instance's exports, in the bindings of its contract version.
enum Exports {
    Current(bindings::Plugin),
    V0_1(v0_1::Exports),
}

/// A warm instance.
struct WarmInstance {
    store: Store<InstanceState>,
    exports: Exports,
}

thread_local! {
    /// Each thread's warm instances, by plugin id.
    static LOCAL: std::cell::RefCell<Vec<(u64, WarmInstance)>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub struct WasmPlugin {
    /// Unique in the process: keys this plugin's warm instance in each
    /// thread's `LOCAL` (two loads of one file get different ids).
    id: u64,
    name: Arc<str>,
    pre: Pre,
    config_json: String,
    deadline: Duration,
    fuel: u64,
    memory_limit: u64,
    idle: Mutex<Vec<WarmInstance>>,
    max_idle: usize,
}

/// The contract version a component was built for, from the name of the
/// contract interface it imports (`fastgate:plugin/types@0.1.0`).
fn contract_version(component: &Component, engine: &Engine) -> Option<String> {
    let ty = component.component_type();
    ty.imports(engine)
        .find_map(|(name, _)| name.strip_prefix("fastgate:plugin/")?.split_once('@'))
        .map(|(_, version)| version.to_string())
}

/// Whether two contract versions are compatible, by semver: the same major
/// version, or for 0.x the same minor one (`0.2.0` and `0.2.1` are, `0.1.0`
/// and `0.2.0` are not).
fn same_contract(a: &str, b: &str) -> bool {
    fn key(version: &str) -> (Option<&str>, Option<&str>) {
        let mut parts = version.split('.');
        match (parts.next(), parts.next()) {
            (Some("0"), minor) => (Some("0"), minor),
            (major, _) => (major, None),
        }
    }
    key(a) == key(b)
}

/// Which bindings a component built for contract `version` goes through;
/// `None` when this gateway speaks no compatible version. A component that
/// imports no contract interface is tried as the current version (linking
/// then says what does not match).
fn contract_of(version: Option<&str>) -> Option<Contract> {
    match version {
        None => Some(Contract::Current),
        Some(v) if same_contract(v, sdk::CONTRACT_VERSION) => Some(Contract::Current),
        Some(v) if same_contract(v, v0_1::VERSION) => Some(Contract::V0_1),
        Some(_) => None,
    }
}

impl WasmPlugin {
    /// Compiles the component, links it, and creates the first instance
    /// (whose `init` tells the capabilities and validates the config).
    pub fn load(config: &PluginSettings) -> Result<(WasmPlugin, sdk::Capabilities), PluginError> {
        let engine = engine()?;
        let load_error = |reason: String| PluginError::Load {
            path: config.path.display().to_string(),
            reason,
        };
        let bytes = std::fs::read(&config.path).map_err(|e| load_error(e.to_string()))?;
        let hits = super::wasm_cache::hits();
        let component = Component::new(engine, &bytes).map_err(|e| {
            load_error(format!(
                "not a WebAssembly component for this gateway: {e:#}"
            ))
        })?;
        let cached = super::wasm_cache::hits() > hits;
        debug!(plugin = %config.name, cached, "wasm plugin compiled{}", if cached { " (from the compile cache)" } else { "" });
        let version = contract_version(&component, engine);
        let contract = contract_of(version.as_deref()).ok_or_else(|| {
            load_error(format!(
                "it was built for fastgate:plugin@{}; this gateway speaks fastgate:plugin@{} and @{} (rebuild it against fastgate-sdk {})",
                version.as_deref().unwrap_or("?"),
                sdk::CONTRACT_VERSION,
                v0_1::VERSION,
                sdk::CONTRACT_VERSION
            ))
        })?;
        let spoken = match contract {
            Contract::Current => sdk::CONTRACT_VERSION,
            Contract::V0_1 => v0_1::VERSION,
        };
        let pre = link(&component, engine, contract).map_err(|(what, e)| {
            load_error(format!(
                "its {what} do not match the plugin world (fastgate:plugin@{spoken}): {e:#}"
            ))
        })?;
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let plugin = WasmPlugin {
            id: NEXT_ID.fetch_add(1, SeqCst),
            name: Arc::from(config.name.as_str()),
            pre,
            config_json: config.config_json.clone(),
            deadline: config.timeout,
            fuel: fuel_for(config.timeout),
            memory_limit: config.memory_limit,
            idle: Mutex::new(Vec::new()),
            max_idle: config.instances,
        };
        let (instance, capabilities) = plugin.instantiate()?;
        plugin.give_back(instance);
        debug!(plugin = %plugin.name, contract = spoken, "wasm plugin loaded");
        Ok((plugin, capabilities))
    }

    fn contract(&self) -> Contract {
        match self.pre {
            Pre::Current(_) => Contract::Current,
            Pre::V0_1(_) => Contract::V0_1,
        }
    }

    fn instantiate(&self) -> Result<(WarmInstance, sdk::Capabilities), PluginError> {
        let state = InstanceState {
            plugin: self.name.clone(),
            limits: MemoryCap {
                memory: self.memory_limit,
                hit: false,
            },
        };
        let engine = match &self.pre {
            Pre::Current(pre) => pre.engine(),
            Pre::V0_1(pre) => pre.engine(),
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limits);
        store
            .set_fuel(fuel_for(INIT_DEADLINE))
            .map_err(|e| PluginError::Trap(format!("{e:#}")))?;
        let (exports, init) = match &self.pre {
            Pre::Current(pre) => {
                let exports = pre
                    .instantiate(&mut store)
                    .map_err(|e| self.trap(&store, e))?;
                let init = exports
                    .call_init(&mut store, &self.config_json)
                    .map(|answer| answer.map(capabilities));
                (Exports::Current(exports), init)
            }
            Pre::V0_1(pre) => {
                let exports = pre
                    .instantiate(&mut store)
                    .map_err(|e| self.trap(&store, e))?;
                let init = v0_1::init(&exports, &mut store, &self.config_json);
                (Exports::V0_1(exports), init)
            }
        };
        let capabilities = match init {
            Ok(Ok(caps)) => caps,
            Ok(Err(message)) => return Err(PluginError::Init(message)),
            Err(e) => return Err(self.trap(&store, e)),
        };
        Ok((WarmInstance { store, exports }, capabilities))
    }

    /// This thread's warm instance of this plugin, if it has one. Keeping
    /// an instance on the thread that last used it keeps its memory in that
    /// core's cache: handing instances between threads cost the gateway
    /// several microseconds per request in the benchmark.
    fn take_local(&self) -> Option<WarmInstance> {
        LOCAL.with(|local| {
            let mut local = local.try_borrow_mut().ok()?;
            let at = local.iter().position(|(id, _)| *id == self.id)?;
            Some(local.swap_remove(at).1)
        })
    }

    /// Keeps `instance` as this thread's, unless it already has one (then
    /// it is handed back).
    fn keep_local(&self, instance: WarmInstance) -> Option<WarmInstance> {
        LOCAL.with(|local| match local.try_borrow_mut() {
            Ok(mut local) if !local.iter().any(|(id, _)| *id == self.id) => {
                local.push((self.id, instance));
                None
            }
            _ => Some(instance),
        })
    }

    fn give_back(&self, instance: WarmInstance) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(instance);
        }
    }

    /// Names a trap: deadline, memory cap, or the trap itself.
    fn trap(&self, store: &Store<InstanceState>, error: wasmtime::Error) -> PluginError {
        if let Some(wasmtime::Trap::OutOfFuel) = error.downcast_ref::<wasmtime::Trap>() {
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
        f: impl FnOnce(&mut Store<InstanceState>, &Exports) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let mut instance = match self.take_local() {
            Some(instance) => instance,
            None => {
                let warm = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
                match warm {
                    Some(instance) => instance,
                    None => self.instantiate()?.0,
                }
            }
        };
        instance
            .store
            .set_fuel(self.fuel)
            .map_err(|e| PluginError::Trap(format!("{e:#}")))?;
        let result = f(&mut instance.store, &instance.exports);
        match result {
            Ok(value) => {
                if let Some(instance) = self.keep_local(instance) {
                    self.give_back(instance);
                }
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

/// Links a component in the bindings of `contract`: the contract's host
/// interface, the pure part of WASI, traps for every other import. An
/// error says whether the imports or the exports did not match.
fn link(
    component: &Component,
    engine: &Engine,
    contract: Contract,
) -> Result<Pre, (&'static str, wasmtime::Error)> {
    let mut linker: Linker<InstanceState> = Linker::new(engine);
    let added = match contract {
        Contract::Current => bindings::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s),
        Contract::V0_1 => v0_1::add_to_linker(&mut linker),
    };
    added
        .and_then(|()| define_pure_wasi(&mut linker, component, engine))
        .and_then(|()| linker.define_unknown_imports_as_traps(component))
        .map_err(|e| ("imports", e))?;
    let instance_pre = linker
        .instantiate_pre(component)
        .map_err(|e| ("imports", e))?;
    match contract {
        Contract::Current => bindings::PluginPre::new(instance_pre).map(Pre::Current),
        Contract::V0_1 => v0_1::Pre::new(instance_pre).map(Pre::V0_1),
    }
    .map_err(|e| ("exports", e))
}

fn capabilities(caps: wit::Capabilities) -> sdk::Capabilities {
    sdk::Capabilities {
        request_filter: caps.contains(wit::Capabilities::REQUEST_FILTER),
        response_filter: caps.contains(wit::Capabilities::RESPONSE_FILTER),
        inject_env: caps.contains(wit::Capabilities::INJECT_ENV),
        launcher: caps.contains(wit::Capabilities::LAUNCHER),
    }
}

impl Backend for WasmPlugin {
    fn on_request(&self, request: &RequestView<'_>) -> Result<sdk::Decision, PluginError> {
        let contract = self.contract();
        with_packed(
            |head, _| put_request(head, request, None, contract),
            |head, _| {
                self.call(|store, exports| match exports {
                    Exports::Current(b) => b.call_on_request(store, head).map(decision),
                    Exports::V0_1(b) => v0_1::on_request(b, store, head),
                })
            },
        )
    }

    fn on_response(
        &self,
        status: u16,
        headers: &HeaderMap,
    ) -> Result<sdk::HeaderChanges, PluginError> {
        with_packed(
            |packed, _| sdk::wire::put_pairs(packed, headers.len(), header_pairs(headers)),
            |headers, _| {
                self.call(|store, exports| match exports {
                    Exports::Current(b) => {
                        let c = b.call_on_response(store, status, headers)?;
                        Ok(sdk::HeaderChanges {
                            set: headers_from_wit(c.set),
                            append: headers_from_wit(c.append),
                            remove: c.remove,
                        })
                    }
                    Exports::V0_1(b) => v0_1::on_response(b, store, status, headers),
                })
            },
        )
    }

    fn inject_env(
        &self,
        request: &RequestView<'_>,
        params: &Params,
    ) -> Result<Vec<sdk::Param>, PluginError> {
        let contract = self.contract();
        with_packed(
            |head, packed| {
                put_request(head, request, None, contract);
                put_params(packed, params);
            },
            |head, params| {
                self.call(|store, exports| match exports {
                    Exports::Current(b) => {
                        let extra = b.call_inject_env(store, head, params)?;
                        Ok(params_from_wit(extra))
                    }
                    Exports::V0_1(b) => v0_1::inject_env(b, store, head, params),
                })
            },
        )
    }

    fn launch(&self, app: &sdk::AppConfig) -> Result<Result<sdk::SpawnSpec, String>, PluginError> {
        let args: Vec<&str> = app.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = app
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let current = wit::AppConfig {
            name: &app.name,
            options: &app.options,
            command: app.command.as_deref(),
            args: &args,
            env: &env,
            root: &app.root,
            instance_max_requests: app.instance_max_requests,
            config_dir: &app.config_dir,
        };
        self.call(|store, exports| match exports {
            Exports::Current(b) => Ok(b.call_launch(store, current)?.map(spawn_spec)),
            Exports::V0_1(b) => v0_1::launch(b, store, app, &args, &env),
        })
    }
}

fn decision(d: wit::Decision) -> sdk::Decision {
    match d {
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
            params: params_from_wit(r.params),
        }),
        wit::Decision::ContinueWith(params) => sdk::Decision::ContinueWith(params_from_wit(params)),
    }
}

fn spawn_spec(s: wit::SpawnSpec) -> sdk::SpawnSpec {
    sdk::SpawnSpec {
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
        request_timeout_ms: s.request_timeout_ms,
        pool: sdk::PoolDefaults {
            instance_max_requests: s.pool.instance_max_requests,
            min_instances: s.pool.min_instances,
            stderr_mode: s.pool.stderr_mode.map(|m| match m {
                wit::StderrMode::ReturnStderrIn500 => sdk::StderrMode::ReturnStderrIn500,
                wit::StderrMode::ReturnGeneric500 => sdk::StderrMode::ReturnGeneric500,
                wit::StderrMode::IgnoreAndReturn200 => sdk::StderrMode::IgnoreAndReturn200,
                wit::StderrMode::TerminateProcess => sdk::StderrMode::TerminateProcess,
            }),
        },
        dirs: s.dirs,
        required_paths: s
            .required_paths
            .into_iter()
            .map(|r| sdk::RequiredPath {
                path: r.path,
                purpose: r.purpose,
            })
            .collect(),
    }
}

fn params_from_wit(params: Vec<wit::Param>) -> Vec<sdk::Param> {
    params
        .into_iter()
        .map(|p| sdk::Param {
            name: p.name,
            value: p.value,
        })
        .collect()
}

thread_local! {
    /// Reused buffers for the packed arguments of a call.
    static PACKED: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Packs a call's arguments into reused buffers with `pack`, then runs
/// `call` with them.
fn with_packed<R>(
    pack: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>),
    call: impl FnOnce(&[u8], &[u8]) -> R,
) -> R {
    PACKED.with(|buffers| {
        // A plugin call never re-enters the host's packing, but be safe if
        // it ever did: fall back to fresh buffers.
        let mut fresh = (Vec::new(), Vec::new());
        let mut guard = buffers.try_borrow_mut();
        let (a, b) = match guard.as_deref_mut() {
            Ok(buffers) => buffers,
            Err(_) => &mut fresh,
        };
        a.clear();
        b.clear();
        pack(a, b);
        call(a, b)
    })
}

fn headers_from_wit(headers: Vec<wit::Header>) -> Vec<sdk::Header> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::{OnError, PluginKind};

    #[test]
    fn contract_versions_are_compared_as_semver() {
        assert!(same_contract("0.2.0", "0.2.0"));
        assert!(same_contract("0.2.3", "0.2.0"));
        assert!(!same_contract("0.1.0", "0.2.0"));
        assert!(same_contract("1.4.0", "1.0.2"));
        assert!(!same_contract("2.0.0", "1.0.0"));
    }

    /// The cost of one `on_request` call, from the host's side, for a
    /// plugin that does next to nothing (tests/plugins/misbehave: the
    /// host's share) and for the benchmark's filter (examples/path-filter
    /// inspecting the benchmark's seven headers):
    /// `cargo test --release -p fastgate --lib call_cost -- --ignored --nocapture`
    /// (needs tests/run.sh's wasm builds).
    ///
    /// "warm" is back-to-back calls; "cold" writes over 4 MiB (twice the
    /// machine's L2) before each call, which is closer to a call inside the
    /// loaded gateway, where hyper, tokio and php-cgi run in between.
    #[test]
    #[ignore = "a measurement, not a test: run it by name"]
    fn call_cost() {
        let wasm = |name: &str| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../target/wasm32-wasip2/release/{name}.wasm"))
        };
        let bench_config = r#"{"deny_user_agents": ["BadBot", "sqlmap"], "deny_header_values": ["<script", "../"]}"#;
        let bench_headers = [
            ("host", "127.0.0.1:18191"),
            (
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36",
            ),
            (
                "accept",
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            ),
            ("accept-language", "en-US,en;q=0.9"),
            ("accept-encoding", "gzip, deflate, br"),
            (
                "cookie",
                "session=0123456789abcdef0123456789abcdef; theme=dark",
            ),
            ("referer", "http://127.0.0.1/index.html"),
        ];
        for (plugin, config_json, headers) in [
            ("misbehave", "{}", &bench_headers[..1]),
            ("misbehave", "{}", &bench_headers[..]),
            ("path_filter", bench_config, &bench_headers[..]),
        ] {
            let config = PluginSettings {
                name: plugin.into(),
                path: wasm(plugin),
                kind: PluginKind::Wasm,
                config_json: config_json.into(),
                on_error: OnError::FailClosed,
                timeout: Duration::from_millis(10),
                memory_limit: 64 << 20,
                instances: 1,
            };
            let (loaded, _) = WasmPlugin::load(&config).unwrap();
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                map.insert(*name, http::HeaderValue::from_static(value));
            }
            let (warm, cold) = time_calls(&loaded, &map);
            println!(
                "{plugin}, {} headers: {warm:?} warm, {cold:?} cold per on_request call",
                headers.len()
            );
        }
    }

    /// Mean time of one `on_request` call, warm (back to back) and cold
    /// (after 4 MiB of other memory traffic).
    fn time_calls(loaded: &WasmPlugin, headers: &HeaderMap) -> (Duration, Duration) {
        let view = RequestView {
            method: "GET",
            path: "/hello.php",
            raw_path: "/hello.php",
            query: "",
            version: "HTTP/1.1",
            headers,
            client_addr: "127.0.0.1:40000",
            server_addr: "127.0.0.1:8080",
            app: "",
        };
        for _ in 0..1000 {
            loaded.on_request(&view).unwrap();
        }
        let calls = 100_000;
        let start = std::time::Instant::now();
        for _ in 0..calls {
            loaded.on_request(&view).unwrap();
        }
        let warm = start.elapsed() / calls;
        let mut junk = vec![0u8; 4 << 20];
        let mut spent = Duration::ZERO;
        let calls = 20_000;
        for round in 0..calls {
            for byte in junk.iter_mut().step_by(64) {
                *byte = byte.wrapping_add(round as u8);
            }
            let start = std::time::Instant::now();
            loaded.on_request(&view).unwrap();
            spent += start.elapsed();
        }
        (warm, spent / calls)
    }
}
