//! The fastgate plugin SDK.
//!
//! Write a plugin once, against the [`Plugin`] trait, and build it two ways
//! from the same source:
//!
//! - `cargo build --target wasm32-wasip2 --release` gives a WebAssembly
//!   component (`.wasm`) that fastgate runs sandboxed in wasmtime;
//! - `cargo build --release` gives a native shared library (`.so`) that
//!   fastgate loads with `dlopen`: no sandbox, no copying into a VM.
//!
//! ```
//! use fastgate_sdk::{Capabilities, Decision, Plugin, RequestHead, export_plugin};
//!
//! struct DenyAdmin;
//!
//! impl Plugin for DenyAdmin {
//!     fn init(_config: &str) -> Result<Self, String> {
//!         Ok(DenyAdmin)
//!     }
//!     fn capabilities(&self) -> Capabilities {
//!         Capabilities::REQUEST_FILTER
//!     }
//!     fn on_request(&self, request: &RequestHead<'_>) -> Decision {
//!         // `path` is decoded and normalised: `/%61dmin` and `//admin`
//!         // are `/admin` here too.
//!         if request.path.starts_with("/admin") {
//!             Decision::Deny(403)
//!         } else {
//!             Decision::Continue
//!         }
//!     }
//! }
//!
//! export_plugin!(DenyAdmin);
//! ```
//!
//! The crate needs `crate-type = ["cdylib"]` (plus `"rlib"` if other code
//! links it). The contract itself is `wit/plugin.wit`; see docs/plugins.md
//! for configuring, debugging and the versioning promise.

pub mod types;
pub mod wire;

#[cfg(not(target_arch = "wasm32"))]
pub mod native;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod wasm;

pub use types::*;

/// The version of the WIT contract (`fastgate:plugin@…`) this SDK builds.
pub const CONTRACT_VERSION: &str = "0.2.0";

/// A fastgate plugin. Every hook but [`init`](Plugin::init) and
/// [`capabilities`](Plugin::capabilities) has a default that does nothing
/// (`Continue`, no changes, no parameters); the gateway only calls the hooks
/// named in [`capabilities`](Plugin::capabilities).
///
/// Hooks take `&self` and may run on several threads at once in a native
/// build, hence `Send + Sync`; keep per-request state out of `self` (or
/// behind a lock). In a wasm build each instance runs one call at a time.
///
/// Inputs are borrowed views of what the gateway sent ([`RequestHead`],
/// [`Pairs`]): reading them allocates nothing; copy what you keep.
pub trait Plugin: Send + Sync + Sized + 'static {
    /// Builds the plugin from its `config` table in fastgate.toml, as JSON
    /// text (`{}` when there is none). An error is shown by `fastgate check`
    /// and stops the gateway from starting; [`parse_config`] gives good
    /// messages for free.
    fn init(config: &str) -> Result<Self, String>;

    /// The hooks this plugin implements.
    fn capabilities(&self) -> Capabilities;

    /// A request filter. Server-wide plugins see every request before the
    /// handler mapping; an app's plugins see the requests mapped to it.
    fn on_request(&self, _request: &RequestHead<'_>) -> Decision {
        Decision::Continue
    }

    /// A response filter: changes to the response headers.
    fn on_response(&self, _status: u16, _headers: &Pairs<'_>) -> HeaderChanges {
        HeaderChanges::default()
    }

    /// Extra FastCGI/CGI parameters for the app, given the request and the
    /// parameters the gateway built. A parameter with the name of an
    /// existing one replaces it.
    fn inject_env(&self, _request: &RequestHead<'_>, _params: &Pairs<'_>) -> Vec<Param> {
        Vec::new()
    }

    /// Describes how to start an app (`launcher = "<this plugin>"`).
    fn launch(&self, _app: &AppConfig) -> Result<SpawnSpec, String> {
        Err("this plugin is not a launcher".to_string())
    }
}

/// Parses a plugin's JSON config into `T`, with messages that name the
/// offending key (`unknown field "pahts", expected "paths"`). Use
/// `#[serde(deny_unknown_fields)]` on `T` so typos are errors.
pub fn parse_config<T: serde::de::DeserializeOwned>(config: &str) -> Result<T, String> {
    serde_json::from_str(config).map_err(|e| {
        // serde_json appends " at line 1 column N", which means nothing to
        // someone who wrote TOML.
        let text = e.to_string();
        match text.find(" at line ") {
            Some(at) => text[..at].to_string(),
            None => text,
        }
    })
}

/// Percent-encodes a decoded path (such as [`RequestHead::path`] or a part
/// of it) for [`Rewrite::path`], which is a URI path: every byte but
/// letters, digits, `/` and the other characters a path segment may carry
/// as they are becomes `%XX`, so a `%`, `?`, `#` or space in a file name
/// stays part of the path.
///
/// ```
/// assert_eq!(fastgate_sdk::encode_path("/new/100% a?.txt"), "/new/100%25%20a%3F.txt");
/// ```
pub fn encode_path(path: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

/// Writes a line to the gateway's log, tagged with the plugin's name.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    wasm::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    native::log(level, message);
}

/// Exports a [`Plugin`] type: as the component's exports when building for
/// wasm32, as the C-ABI entry point [`native::ENTRY_SYMBOL`] otherwise.
/// Use it once per crate.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type FastgatePluginExport = $crate::wasm::Adapter<$plugin>;
            $crate::wasm::bindings::export_wasm_plugin!(
                FastgatePluginExport with_types_in $crate::wasm::bindings
            );
        };

        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            static FASTGATE_PLUGIN_TABLE: $crate::native::PluginTable =
                $crate::native::PluginTable::new::<$plugin>();

            /// The native entry point the gateway looks up.
            #[allow(unsafe_code)]
            #[unsafe(no_mangle)]
            pub extern "C" fn fastgate_plugin_entry() -> *const $crate::native::PluginTable {
                &FASTGATE_PLUGIN_TABLE
            }
        };
    };
}
