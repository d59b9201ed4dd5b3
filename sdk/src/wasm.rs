//! The WebAssembly side of a plugin: bindings generated from
//! `wit/plugin.wit`, and an adapter that implements the generated `Guest`
//! trait for any [`Plugin`] by converting between the generated types and
//! the SDK's own.
//!
//! A component instance runs one call at a time and the gateway calls
//! `init` once per instance, so the plugin value lives in a per-instance
//! static.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::OnceLock;

use crate::Plugin;
use crate::types as sdk;

#[doc(hidden)]
#[allow(clippy::too_many_arguments, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "export_wasm_plugin",
        default_bindings_module: "fastgate_sdk::wasm::bindings",
    });
}

use bindings::fastgate::plugin::host;
use bindings::fastgate::plugin::types as wit;

static INSTANCE: OnceLock<Box<dyn Any + Send + Sync>> = OnceLock::new();

/// Implements the generated `Guest` trait for plugin type `P`.
#[doc(hidden)]
pub struct Adapter<P>(PhantomData<P>);

fn plugin<P: Plugin>() -> &'static P {
    match INSTANCE.get().and_then(|p| p.downcast_ref::<P>()) {
        Some(p) => p,
        // The gateway always calls `init` first; a hook before it is a
        // host bug, and a trap is the honest answer.
        None => panic!("fastgate plugin hook called before init"),
    }
}

pub(crate) fn log(level: sdk::Level, message: &str) {
    let level = match level {
        sdk::Level::Error => host::Level::Error,
        sdk::Level::Warn => host::Level::Warn,
        sdk::Level::Info => host::Level::Info,
        sdk::Level::Debug => host::Level::Debug,
        sdk::Level::Trace => host::Level::Trace,
    };
    host::log(level, message);
}

impl<P: Plugin> bindings::Guest for Adapter<P> {
    fn init(config: String) -> Result<wit::Capabilities, String> {
        // stderr goes nowhere in the sandbox: send panic messages to the
        // gateway's log, where the trap that follows is reported too.
        std::panic::set_hook(Box::new(|info| {
            log(sdk::Level::Error, &format!("plugin panicked: {info}"));
        }));
        let plugin = P::init(&config)?;
        let caps = plugin.capabilities();
        INSTANCE
            .set(Box::new(plugin))
            .map_err(|_| "init called twice".to_string())?;
        let mut flags = wit::Capabilities::empty();
        flags.set(wit::Capabilities::REQUEST_FILTER, caps.request_filter);
        flags.set(wit::Capabilities::RESPONSE_FILTER, caps.response_filter);
        flags.set(wit::Capabilities::INJECT_ENV, caps.inject_env);
        flags.set(wit::Capabilities::LAUNCHER, caps.launcher);
        Ok(flags)
    }

    fn on_request(request: Vec<u8>) -> wit::Decision {
        match plugin::<P>().on_request(&head(&request)) {
            sdk::Decision::Continue => wit::Decision::Continue,
            sdk::Decision::Deny(status) => wit::Decision::Deny(status),
            sdk::Decision::Respond(r) => wit::Decision::Respond(wit::Response {
                status: r.status,
                headers: headers_to(r.headers),
                body: r.body,
            }),
            sdk::Decision::Rewrite(r) => wit::Decision::Rewrite(wit::Rewrite {
                path: r.path,
                set_headers: headers_to(r.set_headers),
                remove_headers: r.remove_headers,
                params: params_to(r.params),
            }),
            sdk::Decision::ContinueWith(params) => wit::Decision::ContinueWith(params_to(params)),
        }
    }

    fn on_response(status: u16, headers: Vec<u8>) -> wit::HeaderChanges {
        let changes = plugin::<P>().on_response(status, &unpack(&headers));
        wit::HeaderChanges {
            set: headers_to(changes.set),
            append: headers_to(changes.append),
            remove: changes.remove,
        }
    }

    fn inject_env(request: Vec<u8>, params: Vec<u8>) -> Vec<wit::Param> {
        params_to(plugin::<P>().inject_env(&head(&request), &unpack(&params)))
    }

    fn launch(app: wit::AppConfig) -> Result<wit::SpawnSpec, String> {
        let app = sdk::AppConfig {
            name: app.name,
            options: app.options,
            command: app.command,
            args: app.args,
            env: app.env,
            root: app.root,
            instance_max_requests: app.instance_max_requests,
            config_dir: app.config_dir,
        };
        let spec = plugin::<P>().launch(&app)?;
        Ok(wit::SpawnSpec {
            command: spec.command,
            args: spec.args,
            env: spec.env,
            working_dir: spec.working_dir,
            files: spec
                .files
                .into_iter()
                .map(|f| wit::RuntimeFile {
                    name: f.name,
                    contents: f.contents,
                    executable: f.executable,
                })
                .collect(),
            protocol: match spec.protocol {
                sdk::AppProtocol::FastCgi => wit::AppProtocol::Fastcgi,
                sdk::AppProtocol::Cgi => wit::AppProtocol::Cgi,
            },
            params: spec.params,
            mapping: wit::MappingDefaults {
                handles: spec.mapping.handles,
                resource_type: spec.mapping.resource_type,
                fallback: spec.mapping.fallback,
                static_dirs: spec.mapping.static_dirs,
            },
            request_timeout_ms: spec.request_timeout_ms,
            pool: wit::PoolDefaults {
                instance_max_requests: spec.pool.instance_max_requests,
                min_instances: spec.pool.min_instances,
                stderr_mode: spec.pool.stderr_mode.map(|m| match m {
                    sdk::StderrMode::ReturnStderrIn500 => wit::StderrMode::ReturnStderrIn500,
                    sdk::StderrMode::ReturnGeneric500 => wit::StderrMode::ReturnGeneric500,
                    sdk::StderrMode::IgnoreAndReturn200 => wit::StderrMode::IgnoreAndReturn200,
                    sdk::StderrMode::TerminateProcess => wit::StderrMode::TerminateProcess,
                }),
            },
            dirs: spec.dirs,
            required_paths: spec
                .required_paths
                .into_iter()
                .map(|r| wit::RequiredPath {
                    path: r.path,
                    purpose: r.purpose,
                })
                .collect(),
        })
    }
}

/// Reads a `request-head` buffer in place. Like `pairs`, a malformed one
/// is a host bug, and a trap is the honest answer.
fn head(bytes: &[u8]) -> sdk::RequestHead<'_> {
    match crate::wire::decode_request_head(bytes) {
        Ok(head) => head,
        Err(e) => panic!("fastgate sent a malformed request head: {e}"),
    }
}

/// Unpacks a `pairs` buffer. The gateway always sends a well-formed one;
/// if it did not, a trap is the honest answer (the gateway then discards
/// this instance and applies `on_error`).
fn unpack(bytes: &[u8]) -> sdk::Pairs<'_> {
    match crate::wire::decode_pairs(bytes) {
        Ok(pairs) => pairs,
        Err(e) => panic!("fastgate sent malformed pairs: {e}"),
    }
}

fn params_to(params: Vec<sdk::Param>) -> Vec<wit::Param> {
    params
        .into_iter()
        .map(|p| wit::Param {
            name: p.name,
            value: p.value,
        })
        .collect()
}

fn headers_to(headers: Vec<sdk::Header>) -> Vec<wit::Header> {
    headers
        .into_iter()
        .map(|h| wit::Header {
            name: h.name,
            value: h.value,
        })
        .collect()
}
