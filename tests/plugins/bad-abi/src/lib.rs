//! A native library that claims plugin ABI 999: the gateway must refuse it
//! at start-up, with a message, before calling anything in it.
#![allow(unsafe_code)]

use fastgate_sdk::native::PluginTable;
use fastgate_sdk::{Capabilities, Plugin};

struct Nothing;

impl Plugin for Nothing {
    fn init(_config: &str) -> Result<Self, String> {
        Ok(Nothing)
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::REQUEST_FILTER
    }
}

static TABLE: PluginTable = PluginTable {
    abi_version: 999,
    ..PluginTable::new::<Nothing>()
};

/// The entry point, with a table from the future.
#[unsafe(no_mangle)]
pub extern "C" fn fastgate_plugin_entry() -> *const PluginTable {
    &TABLE
}
