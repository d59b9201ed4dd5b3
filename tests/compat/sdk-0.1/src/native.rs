//! The native (C ABI) side of a plugin: the table a shared library exports
//! and the shims that turn C calls into calls of the [`Plugin`] trait.
//!
//! The gateway `dlopen`s the library, looks up [`ENTRY_SYMBOL`] and calls
//! it to get a [`PluginTable`]. It checks `abi_version` and `size` before it
//! touches any function pointer. Hook inputs and outputs are byte strings in
//! the [`wire`](crate::wire) encoding; outputs are allocated by the plugin
//! and handed back to it through `free_buffer`, so each side frees only
//! what its own allocator made. Every shim catches panics: a panic becomes
//! [`STATUS_PANIC`] with the panic message, never an unwind across the C
//! boundary.
//!
//! This is the only module of the SDK with `unsafe` code.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use crate::Plugin;
use crate::types::{AppConfig, Level};
use crate::wire::{self, Wire};

/// The version of this ABI. The gateway refuses a library whose table says
/// otherwise.
pub const ABI_VERSION: u32 = 1;

/// The symbol a plugin library exports (a `extern "C" fn() -> *const
/// PluginTable`).
pub const ENTRY_SYMBOL: &str = "fastgate_plugin_entry";

/// The hook ran; `out` holds its result.
pub const STATUS_OK: i32 = 0;
/// The hook's input could not be decoded; `out` holds the reason.
pub const STATUS_BAD_INPUT: i32 = 1;
/// The hook panicked; `out` holds the panic message.
pub const STATUS_PANIC: i32 = 2;

/// Bytes allocated by the plugin and owned by whoever holds them, until
/// passed back to `free_buffer`.
#[repr(C)]
#[derive(Debug)]
pub struct Buffer {
    pub ptr: *mut u8,
    pub len: usize,
    pub cap: usize,
}

impl Buffer {
    pub const EMPTY: Buffer = Buffer {
        ptr: std::ptr::null_mut(),
        len: 0,
        cap: 0,
    };

    fn from_vec(bytes: Vec<u8>) -> Buffer {
        let mut bytes = std::mem::ManuallyDrop::new(bytes);
        Buffer {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
            cap: bytes.capacity(),
        }
    }
}

/// What the gateway gives a plugin library at `init`.
#[repr(C)]
#[derive(Debug)]
pub struct HostTable {
    pub abi_version: u32,
    pub size: u32,
    /// Writes `message` (UTF-8, `len` bytes) at `level` (0 = error … 4 =
    /// trace) to the gateway's log, tagged with the calling plugin's name.
    pub log: extern "C" fn(level: u32, message: *const u8, len: usize),
}

/// The signature shared by the hooks: instance, input bytes, output buffer.
pub type HookFn = unsafe extern "C" fn(
    instance: *const c_void,
    input: *const u8,
    len: usize,
    out: *mut Buffer,
) -> i32;

/// What a plugin library exports. Fields are only ever appended; `size`
/// tells the gateway which fields exist.
#[repr(C)]
#[derive(Debug)]
pub struct PluginTable {
    pub abi_version: u32,
    /// `size_of::<PluginTable>()` as the plugin was compiled.
    pub size: u32,
    /// Creates the plugin instance from its JSON config. On success writes
    /// the instance to `*instance` and `Result<Capabilities, String>` to
    /// `out`; the instance is shared by all threads and never freed.
    pub init: unsafe extern "C" fn(
        host: *const HostTable,
        config: *const u8,
        len: usize,
        instance: *mut *const c_void,
        out: *mut Buffer,
    ) -> i32,
    /// request head → `Decision`.
    pub on_request: HookFn,
    /// status + header pairs → `HeaderChanges`.
    pub on_response: HookFn,
    /// request head + parameter pairs → `Vec<Param>`.
    pub inject_env: HookFn,
    /// `AppConfig` → `Result<SpawnSpec, String>`.
    pub launch: HookFn,
    /// Frees a buffer the plugin wrote to `out`.
    pub free_buffer: unsafe extern "C" fn(buffer: Buffer),
}

impl PluginTable {
    /// The table for plugin type `P`; what [`export_plugin!`](crate::export_plugin) puts in a static.
    pub const fn new<P: Plugin>() -> PluginTable {
        PluginTable {
            abi_version: ABI_VERSION,
            size: std::mem::size_of::<PluginTable>() as u32,
            init: init_shim::<P>,
            on_request: on_request_shim::<P>,
            on_response: on_response_shim::<P>,
            inject_env: inject_env_shim::<P>,
            launch: launch_shim::<P>,
            free_buffer: free_buffer_shim,
        }
    }
}

static HOST_LOG: OnceLock<extern "C" fn(u32, *const u8, usize)> = OnceLock::new();

/// Sends a log line to the gateway (used by [`crate::log`]).
pub(crate) fn log(level: Level, message: &str) {
    if let Some(log) = HOST_LOG.get() {
        log(level as u32, message.as_ptr(), message.len());
    }
}

/// What a caught panic is reported as (the gateway uses it for the
/// built-in plugins it links in, too).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("plugin panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("plugin panicked: {s}")
    } else {
        "plugin panicked".to_string()
    }
}

/// Runs `f` with panics caught, and writes what it returns to `out`.
///
/// # Safety
/// `out` must be valid for a write of one `Buffer`.
unsafe fn run(out: *mut Buffer, f: impl FnOnce() -> Result<Vec<u8>, String>) -> i32 {
    let (status, bytes) = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(bytes)) => (STATUS_OK, bytes),
        Ok(Err(reason)) => (STATUS_BAD_INPUT, reason.into_bytes()),
        Err(payload) => (STATUS_PANIC, panic_message(&*payload).into_bytes()),
    };
    // SAFETY: the caller promises `out` points to writable memory for one
    // Buffer (the host passes a pointer to a local).
    unsafe { out.write(Buffer::from_vec(bytes)) };
    status
}

/// # Safety
/// `input` must point to `len` readable bytes (or be null with `len` 0)
/// that stay valid for `'a`.
unsafe fn input<'a>(input: *const u8, len: usize) -> &'a [u8] {
    if input.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: non-null, and the caller promises `len` readable bytes.
        unsafe { std::slice::from_raw_parts(input, len) }
    }
}

fn decode<T: Wire>(bytes: &[u8]) -> Result<T, String> {
    wire::decode(bytes).map_err(|e| e.to_string())
}

unsafe extern "C" fn init_shim<P: Plugin>(
    host: *const HostTable,
    config: *const u8,
    len: usize,
    instance: *mut *const c_void,
    out: *mut Buffer,
) -> i32 {
    // SAFETY: the host passes `len` bytes of config and a valid `out`.
    let config = unsafe { input(config, len) };
    // SAFETY: `host` is null or points to the host's static table.
    let host = unsafe { host.as_ref() };
    let mut created: *const c_void = std::ptr::null();
    // SAFETY: `out` is valid per this function's contract.
    let status = unsafe {
        run(out, || {
            if let Some(host) = host
                && host.abi_version == ABI_VERSION
            {
                let _ = HOST_LOG.set(host.log);
            }
            let config =
                std::str::from_utf8(config).map_err(|_| "config is not UTF-8".to_string())?;
            let result = P::init(config).map(|plugin| {
                let capabilities = plugin.capabilities();
                // Leaked on purpose: the instance lives as long as the
                // library, which the gateway never unloads.
                created = Box::into_raw(Box::new(plugin)) as *const c_void;
                capabilities
            });
            Ok(wire::encode(&result))
        })
    };
    if !instance.is_null() {
        // SAFETY: non-null, and the host passes a pointer to a local.
        unsafe { instance.write(created) };
    }
    status
}

/// # Safety
/// `instance` must be a pointer `init_shim::<P>` produced.
unsafe fn plugin<'a, P: Plugin>(instance: *const c_void) -> Result<&'a P, String> {
    // SAFETY: per the contract, `instance` came from `Box::<P>::into_raw`
    // and is never freed, so it is a valid shared `P` for any lifetime.
    unsafe { (instance as *const P).as_ref() }.ok_or_else(|| "no plugin instance".to_string())
}

/// The body of every hook shim: the plugin and the input bytes in, the
/// encoded answer out, panics caught.
///
/// # Safety
/// The host's contract for a hook: `bytes` points to `len` readable bytes,
/// `out` to a writable `Buffer`, and `instance` came from `init_shim::<P>`.
unsafe fn hook<P: Plugin>(
    instance: *const c_void,
    bytes: *const u8,
    len: usize,
    out: *mut Buffer,
    call: impl FnOnce(&P, &[u8]) -> Result<Vec<u8>, String>,
) -> i32 {
    // SAFETY: as this function's contract says.
    unsafe {
        let bytes = input(bytes, len);
        run(out, || call(plugin::<P>(instance)?, bytes))
    }
}

fn text(e: wire::WireError) -> String {
    e.to_string()
}

unsafe extern "C" fn on_request_shim<P: Plugin>(
    instance: *const c_void,
    bytes: *const u8,
    len: usize,
    out: *mut Buffer,
) -> i32 {
    // SAFETY: the host keeps the hook contract (see `hook`).
    unsafe {
        hook::<P>(instance, bytes, len, out, |plugin, bytes| {
            let request = wire::decode_request_head(bytes).map_err(text)?;
            Ok(wire::encode(&plugin.on_request(&request)))
        })
    }
}

unsafe extern "C" fn on_response_shim<P: Plugin>(
    instance: *const c_void,
    bytes: *const u8,
    len: usize,
    out: *mut Buffer,
) -> i32 {
    // SAFETY: the host keeps the hook contract (see `hook`).
    unsafe {
        hook::<P>(instance, bytes, len, out, |plugin, bytes| {
            let (status, headers) = wire::decode_response_head(bytes).map_err(text)?;
            Ok(wire::encode(&plugin.on_response(status, &headers)))
        })
    }
}

unsafe extern "C" fn inject_env_shim<P: Plugin>(
    instance: *const c_void,
    bytes: *const u8,
    len: usize,
    out: *mut Buffer,
) -> i32 {
    // SAFETY: the host keeps the hook contract (see `hook`).
    unsafe {
        hook::<P>(instance, bytes, len, out, |plugin, bytes| {
            let (request, params) = wire::decode_env_input(bytes).map_err(text)?;
            Ok(wire::encode(&plugin.inject_env(&request, &params)))
        })
    }
}

unsafe extern "C" fn launch_shim<P: Plugin>(
    instance: *const c_void,
    bytes: *const u8,
    len: usize,
    out: *mut Buffer,
) -> i32 {
    // SAFETY: the host keeps the hook contract (see `hook`).
    unsafe {
        hook::<P>(instance, bytes, len, out, |plugin, bytes| {
            let app: AppConfig = decode(bytes)?;
            Ok(wire::encode(&plugin.launch(&app)))
        })
    }
}

unsafe extern "C" fn free_buffer_shim(buffer: Buffer) {
    if !buffer.ptr.is_null() {
        // SAFETY: the buffer came from `Buffer::from_vec` in this library,
        // and the host passes each one back exactly once.
        drop(unsafe { Vec::from_raw_parts(buffer.ptr, buffer.len, buffer.cap) });
    }
}
