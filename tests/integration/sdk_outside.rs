//! Issue 13: the SDK is usable from outside this repository. A plugin crate
//! in a folder of its own, depending on `fastgate-sdk` by path, builds
//! without the fastgate workspace, and the gateway loads what it built.
//! (Depending on it by version is `cargo package -p fastgate-sdk`, which
//! builds the packaged SDK alone; tests/run.sh runs it.)

use std::path::Path;
use std::process::Command;

use crate::util::*;

const PLUGIN: &str = r#"use fastgate_sdk::{Capabilities, Decision, Plugin, RequestHead, Response, export_plugin};

struct Hello;

impl Plugin for Hello {
    fn init(_config: &str) -> Result<Self, String> {
        Ok(Hello)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::REQUEST_FILTER
    }

    fn on_request(&self, request: &RequestHead<'_>) -> Decision {
        if request.path == "/hello" {
            return Decision::Respond(Response::text(200, "hello from outside"));
        }
        Decision::Continue
    }
}

export_plugin!(Hello);
"#;

#[test]
fn a_plugin_crate_outside_the_workspace_builds_against_the_sdk_and_loads() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap();
    // Outside the repository, so that cargo sees no workspace around it.
    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path().join("hello-plugin");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        format!(
            "[package]\nname = \"hello-plugin\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nfastgate-sdk = {{ path = {:?} }}\n",
            repo.join("sdk").display().to_string()
        ),
    )
    .unwrap();
    std::fs::write(krate.join("src/lib.rs"), PLUGIN).unwrap();
    // Its dependencies come from the local registry cache (no network);
    // one shared target folder keeps later runs quick.
    let target = repo.join("target/outside-sdk");
    let out = Command::new(env!("CARGO"))
        .args(["build", "--offline", "--quiet"])
        .current_dir(&krate)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the plugin did not build outside the workspace:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lib = target.join("debug/libhello_plugin.so");
    let config = php_config("").replacen(
        "root = \"www\"\n",
        "root = \"www\"\nplugins = [\"hello\"]\n",
        1,
    ) + &format!(
        "\n[[plugin]]\nname = \"hello\"\npath = {:?}\n",
        lib.display().to_string()
    );
    let gw = Gateway::start(&config);
    let r = gw.get("/hello");
    assert_eq!(
        (r.status, r.text()),
        (200, "hello from outside".to_string())
    );
}
