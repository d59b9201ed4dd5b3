//! Native plugins: shared libraries built with the SDK's `export_plugin!`.
//!
//! The library is opened with `dlopen`, its [`PluginTable`] checked (ABI
//! version and struct size) before any function pointer is touched, and
//! never closed: a library's thread-local destructors and leaked instances
//! must outlive every thread that may have called it. Inputs and outputs
//! cross as bytes in the SDK's wire encoding; output buffers are freed by
//! the library that allocated them.
//!
//! Libraries built for ABI 1 (fastgate-sdk 0.1, contract 0.1.0) load too:
//! their table has the same layout, and the records that changed in ABI 2
//! cross in their old layout (`fastgate_sdk::wire::abi1`).
//!
//! Native code is trusted code: it runs in the gateway's process with no
//! deadline and no memory cap. What the host does guarantee is that a panic
//! in a plugin becomes an error for that request (the SDK's shims catch it)
//! and that malformed answers are rejected, never trusted.
//!
//! This is the one module of the gateway with `unsafe` code.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::ffi::c_void;
use std::sync::Arc;

use fastgate_sdk as sdk;
use fastgate_sdk::native::{
    ABI_VERSION, Buffer, ENTRY_SYMBOL, HookFn, HostTable, PluginTable, STATUS_BAD_INPUT, STATUS_OK,
    STATUS_PANIC,
};
use fastgate_sdk::wire::{self, Wire, WireError, abi1};
use http::HeaderMap;
use tracing::{debug, error, info, trace, warn};

use super::{Backend, Contract, PluginError, RequestView, header_pairs, put_request};
use crate::cgi::params::Params;
use crate::config::{PluginSettings, defaults};

/// The oldest ABI still loaded: fastgate-sdk 0.1's.
const ABI_V0_1: u32 = 1;

/// The first two fields of every version of [`PluginTable`]: what may be
/// read before the version is known.
#[repr(C)]
struct TableHeader {
    abi_version: u32,
    size: u32,
}

static HOST_TABLE: HostTable = HostTable {
    abi_version: ABI_VERSION,
    size: std::mem::size_of::<HostTable>() as u32,
    log: host_log,
};

/// The same table for ABI 1 libraries: their SDK takes the log function
/// only from a host table of its own version.
static HOST_TABLE_V0_1: HostTable = HostTable {
    abi_version: ABI_V0_1,
    ..HOST_TABLE
};

thread_local! {
    /// The plugin being called on this thread, for `host_log`.
    static CURRENT: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
    /// Reused input buffer: encoding a request head allocates nothing in
    /// the steady state.
    static INPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

extern "C" fn host_log(level: u32, message: *const u8, len: usize) {
    if message.is_null() {
        return;
    }
    // SAFETY: the SDK passes a pointer to `len` bytes of a live `&str`
    // for the duration of this call.
    let bytes = unsafe { std::slice::from_raw_parts(message, len) };
    let message = String::from_utf8_lossy(bytes);
    CURRENT.with(|current| {
        let current = current.borrow();
        let plugin = current.as_deref().unwrap_or("(native plugin)");
        match level {
            0 => error!(plugin, "{message}"),
            1 => warn!(plugin, "{message}"),
            2 => info!(plugin, "{message}"),
            3 => debug!(plugin, "{message}"),
            _ => trace!(plugin, "{message}"),
        }
    });
}

/// The instance pointer a library's `init` returned.
struct InstancePtr(*const c_void);

// SAFETY: the SDK requires `Plugin: Send + Sync`, and the pointer is to
// such a value, leaked, never freed or mutated through this handle.
unsafe impl Send for InstancePtr {}
// SAFETY: as above.
unsafe impl Sync for InstancePtr {}

pub struct NativePlugin {
    name: Arc<str>,
    table: &'static PluginTable,
    instance: InstancePtr,
    /// Which layouts its hooks read and write.
    contract: Contract,
}

/// Opens a plugin library for good and returns its table once its ABI
/// version and size are checked, with the contract that version means.
fn open_table(config: &PluginSettings) -> Result<(&'static PluginTable, Contract), PluginError> {
    let path = config.path.display().to_string();
    let load_error = |reason: String| PluginError::Load {
        path: path.clone(),
        reason,
    };
    // SAFETY: opening a library runs its initialisers. That is the trust an
    // operator gives a native plugin by configuring it; the docs say so.
    let library =
        unsafe { libloading::Library::new(&config.path) }.map_err(|e| load_error(e.to_string()))?;
    let table: *const PluginTable = {
        // SAFETY: the SDK's `export_plugin!` defines this symbol as
        // `extern "C" fn() -> *const PluginTable`; a library without it
        // fails the lookup instead.
        let entry = unsafe {
            library.get::<extern "C" fn() -> *const PluginTable>(ENTRY_SYMBOL.as_bytes())
        }
        .map_err(|_| {
            load_error(format!(
                "no `{ENTRY_SYMBOL}` symbol: not a fastgate plugin (use fastgate_sdk::export_plugin!)"
            ))
        })?;
        entry()
    };
    if table.is_null() {
        return Err(load_error("the plugin table is null".to_string()));
    }
    // SAFETY: every table version starts with the two u32 fields of
    // `TableHeader` (the SDK only ever appends fields), so reading them is
    // valid before the version is known.
    let header = unsafe { &*(table as *const TableHeader) };
    // ABI 1's table is ABI 2's: the same fields in the same order.
    let contract = match header.abi_version {
        ABI_VERSION => Contract::Current,
        ABI_V0_1 => Contract::V0_1,
        found => {
            return Err(PluginError::AbiVersion {
                path,
                found,
                expected: ABI_VERSION,
            });
        }
    };
    if (header.size as usize) < std::mem::size_of::<PluginTable>() {
        return Err(load_error(format!(
            "its plugin table is {} bytes, smaller than ABI {ABI_VERSION}'s {}",
            header.size,
            std::mem::size_of::<PluginTable>()
        )));
    }
    // SAFETY: version and size match this ABI, and the table is a static in
    // a library that is never unloaded (forgotten here).
    let table: &'static PluginTable = unsafe { &*table };
    std::mem::forget(library);
    Ok((table, contract))
}

impl NativePlugin {
    /// Opens the library, checks its table and runs its `init`.
    pub fn load(config: &PluginSettings) -> Result<(NativePlugin, sdk::Capabilities), PluginError> {
        let (table, contract) = open_table(config)?;
        let host = match contract {
            Contract::Current => &HOST_TABLE,
            Contract::V0_1 => &HOST_TABLE_V0_1,
        };
        let name: Arc<str> = Arc::from(config.name.as_str());
        let mut instance: *const c_void = std::ptr::null();
        let config_bytes = config.config_json.as_bytes();
        let mut out = Buffer::EMPTY;
        let status = with_current(&name, || {
            // SAFETY: the table was checked; the config slice, the instance
            // slot and `out` are live locals for the whole call.
            unsafe {
                (table.init)(
                    host,
                    config_bytes.as_ptr(),
                    config_bytes.len(),
                    &mut instance,
                    &mut out,
                )
            }
        });
        let answer: Result<sdk::Capabilities, String> =
            take_output(table, status, out, wire::decode)?;
        let capabilities = answer.map_err(PluginError::Init)?;
        if instance.is_null() {
            return Err(PluginError::Invalid(
                "init succeeded without an instance".to_string(),
            ));
        }
        debug!(plugin = %name, path = %config.path.display(), ?contract, "native plugin loaded");
        Ok((
            NativePlugin {
                name,
                table,
                instance: InstancePtr(instance),
                contract,
            },
            capabilities,
        ))
    }

    /// Calls `hook` with the bytes `encode` writes (into a reused buffer),
    /// and reads its answer with `decode`.
    fn call<O>(
        &self,
        hook: HookFn,
        encode: impl FnOnce(&mut Vec<u8>),
        decode: fn(&[u8]) -> Result<O, WireError>,
    ) -> Result<O, PluginError> {
        let mut out = Buffer::EMPTY;
        let status = INPUT.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            buffer.clear();
            encode(&mut buffer);
            with_current(&self.name, || {
                // SAFETY: `hook` comes from a checked table; the instance is
                // the one its `init` returned; input and `out` are live for
                // the call.
                unsafe { hook(self.instance.0, buffer.as_ptr(), buffer.len(), &mut out) }
            })
        });
        take_output(self.table, status, out, decode)
    }
}

fn with_current<R>(name: &Arc<str>, f: impl FnOnce() -> R) -> R {
    CURRENT.with(|c| *c.borrow_mut() = Some(name.clone()));
    let result = f();
    CURRENT.with(|c| *c.borrow_mut() = None);
    result
}

/// Decodes what a hook wrote to `out` and hands the buffer back to the
/// library.
fn take_output<O>(
    table: &PluginTable,
    status: i32,
    out: Buffer,
    decode: fn(&[u8]) -> Result<O, WireError>,
) -> Result<O, PluginError> {
    let bytes: Vec<u8> = if out.ptr.is_null() {
        Vec::new()
    } else {
        // SAFETY: the SDK's shims fill `out` from a `Vec<u8>` of `len`
        // initialised bytes; we copy them before freeing.
        unsafe { std::slice::from_raw_parts(out.ptr, out.len) }.to_vec()
    };
    // SAFETY: `out` was produced by this library's shim and is freed once.
    unsafe { (table.free_buffer)(out) };
    match status {
        STATUS_OK => decode(&bytes).map_err(|e| PluginError::Invalid(e.to_string())),
        STATUS_PANIC => Err(PluginError::Panic(
            String::from_utf8_lossy(&bytes).into_owned(),
        )),
        STATUS_BAD_INPUT => Err(PluginError::Invalid(format!(
            "the plugin could not read its input: {}",
            String::from_utf8_lossy(&bytes)
        ))),
        other => Err(PluginError::Invalid(format!("unknown status {other}"))),
    }
}

impl Backend for NativePlugin {
    fn on_request(&self, request: &RequestView<'_>) -> Result<sdk::Decision, PluginError> {
        let encode = |out: &mut Vec<u8>| put_request(out, request, None, self.contract);
        match self.contract {
            Contract::Current => self.call(self.table.on_request, encode, wire::decode),
            Contract::V0_1 => self.call(self.table.on_request, encode, abi1::decode_decision),
        }
    }

    fn on_response(
        &self,
        status: u16,
        headers: &HeaderMap,
    ) -> Result<sdk::HeaderChanges, PluginError> {
        let encode = |out: &mut Vec<u8>| {
            wire::put_response_head(out, status, headers.len(), header_pairs(headers));
        };
        self.call(self.table.on_response, encode, wire::decode)
    }

    fn inject_env(
        &self,
        request: &RequestView<'_>,
        params: &Params,
    ) -> Result<Vec<sdk::Param>, PluginError> {
        // `EnvInput`: the request head, then the parameters.
        let encode = |out: &mut Vec<u8>| put_request(out, request, Some(params), self.contract);
        self.call(self.table.inject_env, encode, wire::decode)
    }

    fn launch(&self, app: &sdk::AppConfig) -> Result<Result<sdk::SpawnSpec, String>, PluginError> {
        match self.contract {
            Contract::Current => self.call(self.table.launch, |out| app.put(out), wire::decode),
            Contract::V0_1 => {
                // ABI 1 is told the value the pool will use: a 0.1 launcher
                // cannot propose one.
                let max = app
                    .instance_max_requests
                    .unwrap_or(defaults::INSTANCE_MAX_REQUESTS);
                let encode = |out: &mut Vec<u8>| abi1::put_app_config(app, max, out);
                self.call(self.table.launch, encode, abi1::decode_launch)
            }
        }
    }
}
