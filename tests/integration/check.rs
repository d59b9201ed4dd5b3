//! `fastgate check` and other CLI behaviour.

use std::process::Command;

use crate::util::*;

/// `fastgate check` fails, naming the line that starts with `line_start` and `key`.
fn assert_error_at(config: &str, line_start: &str, key: &str) {
    let line = config
        .lines()
        .position(|l| l.starts_with(line_start))
        .unwrap()
        + 1;
    let (ok, _, stderr) = check_config(config);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("fastgate.toml:{line}:")),
        "{stderr}"
    );
    assert!(stderr.contains(key), "{stderr}");
}

#[test]
fn valid_config_passes() {
    let (ok, stdout, stderr) = check_config(&php_config(""));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("app \"php\""), "{stdout}");
    assert!(stdout.contains("*.php"), "{stdout}");
}

#[test]
fn bad_value_names_file_line_and_key() {
    let config = php_config("max_instances = \"x\"");
    assert_error_at(&config, "max_instances = \"x\"", "max_instances");
}

#[test]
fn unknown_key_is_named() {
    let (ok, _, stderr) = check_config(&php_config("max_instanses = 3"));
    assert!(!ok);
    assert!(stderr.contains("max_instanses"), "{stderr}");
}

#[test]
fn impossible_instances_are_refused() {
    assert_error_at(
        &php_config("min_instances = 5"),
        "min_instances",
        "min_instances",
    );
}

#[test]
fn missing_command_is_named() {
    let (ok, _, stderr) = check_config(&php_config("").replace(&php_cgi(), "/nonexistent/php-cgi"));
    assert!(!ok);
    assert!(stderr.contains("/nonexistent/php-cgi"), "{stderr}");
    assert!(stderr.contains("apt-get install php-cgi"), "{stderr}");
}

#[test]
fn version_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_fastgate"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        concat!("fastgate ", env!("CARGO_PKG_VERSION"))
    );
}
