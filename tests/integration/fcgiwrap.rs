//! A generic FastCGI program other than PHP: fcgiwrap running shell CGI scripts.

use crate::util::*;

fn config() -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
root = "www"
[[app]]
name = "cgi"
command = "{}"
handles = ["*.sh"]
max_instances = 2
inherit_env = ["PATH"]
"#,
        fcgiwrap()
    )
}

#[test]
fn get_and_post_through_fcgiwrap() {
    let gw = Gateway::start(&config());
    let r = gw.get("/cgi-bin/hello.sh?a=1");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "QUERY=a=1 METHOD=GET\n");
    let r = post(gw.addr(), "/cgi-bin/hello.sh", "text/plain", b"posted body");
    assert_eq!(r.text(), "QUERY= METHOD=POST\nposted body");
}

#[test]
fn cgi_local_redirect_is_followed_inside_the_gateway() {
    let gw = Gateway::start(&config());
    let r = gw.get("/cgi-bin/redirect.sh");
    assert_eq!(r.status, 200);
    assert!(r.header("location").is_none());
    assert_eq!(r.text(), "target reached QUERY=from=redirect\n");
}
