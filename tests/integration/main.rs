//! Integration tests: the real `fastgate` binary against real php-cgi and
//! fcgiwrap processes on loopback. One module per area; `util` is the harness.
#![allow(clippy::unwrap_used)]

mod admin;
mod admin_page;
mod cgi;
mod check;
mod crash;
mod defaults;
mod edge;
mod faults;
mod fcgiwrap;
mod first_free;
mod idle;
mod iis;
mod iis_import;
mod isolation;
mod launchers;
mod lifecycle;
mod limits;
mod mounts;
mod php;
mod plugin_cache;
mod plugin_contract;
mod plugins;
mod pool;
mod protocol;
mod recycle;
mod reload;
mod safe_defaults;
mod sdk_outside;
mod security;
mod slow;
mod spool;
mod static_files;
mod static_folders;
mod systemd;
mod upload;
mod util;
mod wsgi;
