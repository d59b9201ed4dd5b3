//! Built-in plugins: SDK plugins from `plugins/` linked into the gateway,
//! called in-process through the same [`Backend`] trait as the others.
//!
//! They are written exactly as an outside author would write them (and are
//! also buildable as wasm components and native libraries); linking them in
//! means `launcher = "php"` works with no `[[plugin]]` entry and nothing to
//! build. A `[[plugin]]` of the same name replaces a built-in.

use std::panic::{AssertUnwindSafe, catch_unwind};

use fastgate_sdk::{self as sdk, wire};
use http::HeaderMap;

use super::{Backend, Contract, PluginError, RequestView, header_pairs, put_request};
use crate::cgi::params::Params;

/// A loaded plugin's backend and what it can do.
pub type Loaded = (Box<dyn Backend>, sdk::Capabilities);

/// The built-in plugin called `name`, initialised, with its capabilities.
pub fn load(name: &str) -> Option<Result<Loaded, PluginError>> {
    match name {
        "php" => Some(init::<fastgate_plugin_php::PhpLauncher>()),
        "django" => Some(init::<fastgate_plugin_django::DjangoLauncher>()),
        "cgi" => Some(init::<fastgate_plugin_cgi::CgiLauncher>()),
        _ => None,
    }
}

fn init<P: sdk::Plugin>() -> Result<Loaded, PluginError> {
    let plugin = guard(|| P::init("{}"))?.map_err(PluginError::Init)?;
    let caps = plugin.capabilities();
    Ok((Box::new(Builtin(plugin)), caps))
}

struct Builtin<P>(P);

/// Runs plugin code with panics caught: a bug in a built-in is a failed
/// request, like any plugin's, never a crashed gateway.
fn guard<R>(f: impl FnOnce() -> R) -> Result<R, PluginError> {
    catch_unwind(AssertUnwindSafe(f))
        .map_err(|payload| PluginError::Panic(sdk::native::panic_message(&*payload)))
}

/// The request in the SDK's byte form, which its views read in place.
fn encode_request(r: &RequestView<'_>, params: Option<&Params>) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    put_request(&mut out, r, params, Contract::Current);
    out
}

fn invalid(e: wire::WireError) -> PluginError {
    PluginError::Invalid(e.to_string())
}

impl<P: sdk::Plugin> Backend for Builtin<P> {
    fn on_request(&self, request: &RequestView<'_>) -> Result<sdk::Decision, PluginError> {
        let bytes = encode_request(request, None);
        let head = wire::decode_request_head(&bytes).map_err(invalid)?;
        guard(|| self.0.on_request(&head))
    }

    fn on_response(
        &self,
        status: u16,
        headers: &HeaderMap,
    ) -> Result<sdk::HeaderChanges, PluginError> {
        let mut bytes = Vec::new();
        wire::put_pairs(&mut bytes, headers.len(), header_pairs(headers));
        let pairs = wire::decode_pairs(&bytes).map_err(invalid)?;
        guard(|| self.0.on_response(status, &pairs))
    }

    fn inject_env(
        &self,
        request: &RequestView<'_>,
        params: &Params,
    ) -> Result<Vec<sdk::Param>, PluginError> {
        let bytes = encode_request(request, Some(params));
        let (head, params) = wire::decode_env_input(&bytes).map_err(invalid)?;
        guard(|| self.0.inject_env(&head, &params))
    }

    fn launch(&self, app: &sdk::AppConfig) -> Result<Result<sdk::SpawnSpec, String>, PluginError> {
        guard(|| self.0.launch(app))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::BUILTIN_LAUNCHERS;

    #[test]
    fn every_builtin_launcher_name_loads() {
        for name in BUILTIN_LAUNCHERS {
            let loaded = super::load(name).expect("a built-in of that name");
            let (_, caps) = loaded.expect("init");
            assert!(caps.launcher, "{name}");
        }
        assert!(super::load("nope").is_none());
    }
}
