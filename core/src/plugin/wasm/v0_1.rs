//! Contract 0.1.0 (`sdk/wit-0.1.0`): components built with fastgate-sdk 0.1.
//!
//! Their records differ from the current ones where 0.2 changed them:
//! `request-head` has no raw path (the host packs the old layout), a
//! decision has no `continue-with` and a rewrite no parameters, `app-config`
//! carries `instance-max-requests` as the plain value the pool will use (a
//! 0.1 launcher cannot propose one), and a spawn spec has no pool
//! proposals, folders or required paths. Everything is converted to the
//! SDK's current types here, so the rest of the host never sees 0.1.

use fastgate_sdk as sdk;
use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker};

use super::InstanceState;
use crate::config::defaults;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../sdk/wit-0.1.0",
        world: "plugin",
        ownership: Borrowing { duplicate_if_necessary: true },
    });
}

use bindings::fastgate::plugin::{host, types as wit};

/// The contract version these bindings speak.
pub const VERSION: &str = "0.1.0";

pub type Pre = bindings::PluginPre<InstanceState>;
pub type Exports = bindings::Plugin;

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    bindings::Plugin::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
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

type Answer<T> = wasmtime::Result<T>;

pub fn init(
    exports: &Exports,
    store: &mut Store<InstanceState>,
    config: &str,
) -> Answer<Result<sdk::Capabilities, String>> {
    let answer = exports.call_init(store, config)?;
    Ok(answer.map(|caps| sdk::Capabilities {
        request_filter: caps.contains(wit::Capabilities::REQUEST_FILTER),
        response_filter: caps.contains(wit::Capabilities::RESPONSE_FILTER),
        inject_env: caps.contains(wit::Capabilities::INJECT_ENV),
        launcher: caps.contains(wit::Capabilities::LAUNCHER),
    }))
}

/// `head` is packed in the 0.1 layout (no raw path).
pub fn on_request(
    exports: &Exports,
    store: &mut Store<InstanceState>,
    head: &[u8],
) -> Answer<sdk::Decision> {
    Ok(match exports.call_on_request(store, head)? {
        wit::Decision::Continue => sdk::Decision::Continue,
        wit::Decision::Deny(status) => sdk::Decision::Deny(status),
        wit::Decision::Respond(r) => sdk::Decision::Respond(sdk::Response {
            status: r.status,
            headers: headers(r.headers),
            body: r.body,
        }),
        wit::Decision::Rewrite(r) => sdk::Decision::Rewrite(sdk::Rewrite {
            path: r.path,
            set_headers: headers(r.set_headers),
            remove_headers: r.remove_headers,
            params: Vec::new(),
        }),
    })
}

pub fn on_response(
    exports: &Exports,
    store: &mut Store<InstanceState>,
    status: u16,
    packed_headers: &[u8],
) -> Answer<sdk::HeaderChanges> {
    let c = exports.call_on_response(store, status, packed_headers)?;
    Ok(sdk::HeaderChanges {
        set: headers(c.set),
        append: headers(c.append),
        remove: c.remove,
    })
}

/// `head` is packed in the 0.1 layout; `params` as in every version.
pub fn inject_env(
    exports: &Exports,
    store: &mut Store<InstanceState>,
    head: &[u8],
    params: &[u8],
) -> Answer<Vec<sdk::Param>> {
    let extra = exports.call_inject_env(store, head, params)?;
    Ok(extra
        .into_iter()
        .map(|p| sdk::Param {
            name: p.name,
            value: p.value,
        })
        .collect())
}

/// `args` and `env` are `app`'s, borrowed as the bindings lower them.
pub fn launch(
    exports: &Exports,
    store: &mut Store<InstanceState>,
    app: &sdk::AppConfig,
    args: &[&str],
    env: &[(&str, &str)],
) -> Answer<Result<sdk::SpawnSpec, String>> {
    let old = wit::AppConfig {
        name: &app.name,
        options: &app.options,
        command: app.command.as_deref(),
        args,
        env,
        root: &app.root,
        // 0.1 is told the value the pool will use.
        instance_max_requests: app
            .instance_max_requests
            .unwrap_or(defaults::INSTANCE_MAX_REQUESTS),
        config_dir: &app.config_dir,
    };
    Ok(exports.call_launch(store, old)?.map(spawn_spec))
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
        // What 0.1 could not say: no proposals, folders or required paths.
        ..sdk::SpawnSpec::default()
    }
}

fn headers(headers: Vec<wit::Header>) -> Vec<sdk::Header> {
    headers
        .into_iter()
        .map(|h| sdk::Header {
            name: h.name,
            value: h.value,
        })
        .collect()
}
