//! The built files of the workspace's plugin crates, checked to be newer
//! than their sources. It does not build them (tests/run.sh does) nor write
//! the configs that load them.

use std::path::{Path, PathBuf};

/// How a plugin was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginBuild {
    /// `cargo build --release --target wasm32-wasip2 -p <crate>`
    Wasm,
    /// `cargo build -p <crate>` (a cdylib next to the fastgate binary)
    Native,
}

/// The built file of a plugin crate of this workspace (`source` is its
/// folder, e.g. "examples/path-filter"), or a loud failure when it is
/// missing or older than its sources: tests/run.sh builds them.
pub fn plugin_file(source: &str, build: PluginBuild) -> String {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_fastgate"))
        .parent()
        .expect("binary folder");
    let folder = source
        .rsplit('/')
        .next()
        .expect("crate folder")
        .replace('-', "_");
    // Built-in plugins' crates are named fastgate-plugin-<folder>.
    let lib = if source.starts_with("plugins/") {
        format!("fastgate_plugin_{folder}")
    } else {
        folder
    };
    let file = match build {
        PluginBuild::Wasm => bin_dir.join(format!("../wasm32-wasip2/release/{lib}.wasm")),
        PluginBuild::Native => bin_dir.join(format!("lib{lib}.so")),
    };
    let hint =
        "build the plugins with tests/run.sh (it runs cargo build for wasm32-wasip2 and native)";
    let built = std::fs::metadata(&file)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: {hint}", file.display()));
    // The sources each build compiles (the SDK's other backend is cfg'd out).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(root.join(source).join("src"))
        .expect("plugin sources")
        .map(|e| e.expect("dir entry").path())
        .collect();
    // Plugins of tests/compat are built with the pinned fastgate-sdk 0.1.
    let sdk = if source.starts_with("tests/compat/") {
        "tests/compat/sdk-0.1"
    } else {
        "sdk"
    };
    let backend = match build {
        PluginBuild::Wasm => "src/wasm.rs",
        PluginBuild::Native => "src/native.rs",
    };
    for file in ["src/lib.rs", "src/types.rs", "src/wire.rs", backend] {
        sources.push(root.join(sdk).join(file));
    }
    for path in sources {
        let changed = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert!(
            changed <= built,
            "{} is older than {}: {hint}",
            file.display(),
            path.display()
        );
    }
    file.to_string_lossy().into_owned()
}
