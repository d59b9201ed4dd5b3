//! The fastgate plugin SDK.
//!
//! This crate will hold the one contract plugins are written against (the WIT
//! package, the `Plugin` trait and the `export_plugin!` macro). It is empty
//! until the plugin-system issue lands; it exists now so the workspace layout
//! is final from the first commit.
#![forbid(unsafe_code)]
