//! The harness: a real `fastgate` process per test, in a temp dir, on an
//! ephemeral loopback port, plus a small raw HTTP/1.1 client (the tests need
//! to send malformed requests no HTTP library would).
//!
//! One file per concern: `programs` finds php-cgi and fcgiwrap, `site` builds
//! the temp dir and configs (and runs `check` or a failing `serve` on one),
//! `gateway` is the running `fastgate serve`, `procs` reads /proc, `client`
//! speaks HTTP/1.1, `data` makes test payloads and what the fixtures answer,
//! `plugins` finds the built plugin files. The tests import what they use
//! from here (`use crate::util::*`); what only the harness itself needs stays
//! inside. This file holds no harness code of its own, and no test.

mod client;
mod data;
mod gateway;
mod plugins;
mod procs;
mod programs;
mod site;

pub use client::{Response, connect, h2c, post, read_response, request, send_raw};
pub use data::{crc32, distinct_pids, payload, pid_of, post_upload, upload_report};
pub use gateway::Gateway;
pub use plugins::{PluginBuild, plugin_file};
pub use procs::process_alive;
pub use programs::{fcgiwrap, php_cgi};
pub use site::{
    app_path, check_config, fixtures, give_to_apps, launcher_site, php_config, serve_must_fail,
    site, test_app_config,
};
