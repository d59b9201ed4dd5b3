//! Plain PHP requests: methods, status codes, redirects, headers, CGI variables.

use std::time::Duration;

use crate::util::*;

#[test]
fn get_post_and_head() {
    let gw = Gateway::start(&php_config(""));
    let r = gw.get("/server.php?name=fast&n=1");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["GET"]["name"], "fast");
    assert_eq!(v["REQUEST_METHOD"], "GET");
    assert_eq!(v["GATEWAY_INTERFACE"], "CGI/1.1");
    assert!(
        v["SERVER_SOFTWARE"]
            .as_str()
            .unwrap()
            .starts_with("fastgate/")
    );

    let r = post(
        gw.addr(),
        "/server.php",
        "application/x-www-form-urlencoded",
        b"a=1&b=two+words",
    );
    let v = r.json();
    assert_eq!(v["POST"]["a"], "1");
    assert_eq!(v["POST"]["b"], "two words");
    assert_eq!(v["CONTENT_LENGTH"], "15");

    let r = request(gw.addr(), "HEAD", "/server.php", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.body.is_empty());
    assert!(
        gw.wait_for_access("\"HEAD /server.php HTTP/1.1\" 200", Duration::from_secs(5)),
        "{}",
        gw.access_log()
    );
}

#[test]
fn status_codes_and_redirects_set_by_php() {
    let gw = Gateway::start(&php_config(""));
    assert_eq!(gw.get("/status.php?code=418").status, 418);
    assert_eq!(gw.get("/status.php?code=503").status, 503);
    let r = gw.get("/redirect.php?to=/elsewhere");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/elsewhere"));
    let r = gw.get("/redirect.php?to=https://example.com/x&code=301");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://example.com/x"));
}

#[test]
fn cookies_and_repeated_headers() {
    let gw = Gateway::start(&php_config(""));
    let r = request(
        gw.addr(),
        "GET",
        "/cookies.php",
        &[("Cookie", "a=1; b=2")],
        b"",
    );
    assert_eq!(r.status, 200);
    let cookies = r.headers_all("set-cookie");
    assert_eq!(cookies.len(), 2, "{:?}", r.headers);
    assert!(cookies[0].starts_with("first=one"));
    assert!(cookies[1].starts_with("second=two"));
    assert_eq!(r.headers_all("x-multi"), ["a", "b"]);
    assert_eq!(r.text(), r#"cookies={"a":"1","b":"2"}"#);
}

#[test]
fn path_info_and_script_name_for_extension_mappings() {
    let gw = Gateway::start(&php_config(""));
    let v = gw.get("/sub/info.php/x/y?q=1").json();
    assert_eq!(v["SCRIPT_NAME"], "/sub/info.php");
    assert_eq!(v["PATH_INFO"], "/x/y");
    assert_eq!(v["REQUEST_URI"], "/sub/info.php/x/y?q=1");
    assert_eq!(v["QUERY_STRING"], "q=1");
    assert!(
        v["SCRIPT_FILENAME"]
            .as_str()
            .unwrap()
            .ends_with("www/sub/info.php")
    );
}

/// php-cgi mapped by the prefix `/app/*` with `mount_line` (empty: the
/// default mount); `resource_type = "unspecified"`, so no file check, and
/// SCRIPT_FILENAME set in [app.params] to a real script (config params
/// override).
pub(crate) fn prefix_mapped_php(mount_line: &str) -> String {
    let script = fixtures().join("www/server.php").canonicalize().unwrap();
    format!(
        r#"[server]
listen = "127.0.0.1:0"
root = "www"
[[app]]
name = "app"
command = "{php}"
handles = ["/app/*"]
{mount_line}
resource_type = "unspecified"
[app.params]
SCRIPT_FILENAME = "{script}"
"#,
        php = php_cgi(),
        script = script.display()
    )
}

#[test]
fn path_info_and_script_name_for_prefix_mappings() {
    // Mounted at its prefix (without `mount`, the app would be at the site
    // root: mounts::issue13_php_with_a_prefix_mapping_at_the_default_mount).
    let gw = Gateway::start(&prefix_mapped_php("mount = \"/app\""));
    let v = gw.get("/app/x/y?z=2").json();
    assert_eq!(v["SCRIPT_NAME"], "/app");
    assert_eq!(v["PATH_INFO"], "/x/y");
    assert_eq!(v["REQUEST_URI"], "/app/x/y?z=2");
    assert_eq!(v["GET"]["z"], "2");
}

#[test]
fn missing_scripts_404_without_reaching_php() {
    let gw = Gateway::start(&php_config(""));
    let r = gw.get("/nope.php");
    assert_eq!(r.status, 404);
    assert!(
        gw.children().is_empty(),
        "a process was spawned for a missing script"
    );
    assert!(
        gw.wait_for_access("\"GET /nope.php HTTP/1.1\" 404", Duration::from_secs(5)),
        "{}",
        gw.access_log()
    );
    assert!(
        gw.wait_for_log("status=404", std::time::Duration::from_secs(5)),
        "no log line names the 404"
    );
}

#[test]
fn fallback_front_controller_routes_any_path() {
    let gw = Gateway::start(&php_config("fallback = \"/index.php\""));
    let r = gw.get("/any/path?x=1");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "front controller: /any/path?x=1\n");
    let r = gw.get("/missing.php");
    assert_eq!(r.text(), "front controller: /missing.php\n");
    // Files that exist are still served as they are.
    assert!(gw.get("/page.html").text().contains("static page"));
}
