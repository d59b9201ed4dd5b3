//! Issue 13: compiled wasm plugins are kept between starts
//! (`[server] plugin_cache_dir`, wasmtime's own cache), so a second start
//! loads machine code instead of compiling the component again.

use std::time::Duration;

use crate::util::*;

/// A site whose server runs the path-filter example built as wasm, with
/// its compile cache in `cache` (or `plugin_cache_dir = ""`).
fn site(cache: &str) -> String {
    let plugin = format!(
        "[[plugin]]\nname = \"guard\"\npath = \"{}\"\nconfig = {{ deny_paths = [\"/admin\"] }}\n",
        plugin_file("examples/path-filter", PluginBuild::Wasm)
    );
    php_config("").replacen(
        "root = \"www\"\n",
        &format!("root = \"www\"\nplugins = [\"guard\"]\nplugin_cache_dir = {cache:?}\n"),
        1,
    ) + "\n"
        + &plugin
}

fn compiled_line(gw: &Gateway) -> String {
    assert!(
        gw.wait_for_log("wasm plugin compiled", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    gw.logs()
        .lines()
        .find(|l| l.contains("wasm plugin compiled"))
        .unwrap()
        .to_string()
}

#[test]
fn a_second_start_loads_the_compiled_plugin_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("compiled").display().to_string();
    let first = Gateway::start(&site(&dir));
    assert!(
        compiled_line(&first).contains("cached=false"),
        "{}",
        first.logs()
    );
    assert_eq!(first.get("/admin/x.php").status, 403);
    drop(first);
    let files = walk(cache.path());
    assert!(!files.is_empty(), "nothing was cached");
    let second = Gateway::start(&site(&dir));
    assert!(
        compiled_line(&second).contains("cached=true"),
        "{}",
        second.logs()
    );
    assert_eq!(second.get("/admin/x.php").status, 403);
    // Off: compiled every time, nothing written.
    let off = Gateway::start(&site(""));
    assert!(
        compiled_line(&off).contains("cached=false"),
        "{}",
        off.logs()
    );
}

/// Every file below `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
