//! Static files: types, validators, ranges, index documents, 404s.

use crate::util::*;

fn gateway() -> Gateway {
    Gateway::start("[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\n")
}

#[test]
fn content_types_and_validators() {
    let gw = gateway();
    let r = gw.get("/page.html");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.text().contains("static page"));
    let etag = r.header("etag").expect("etag").to_string();
    assert!(r.header("last-modified").is_some());
    assert_eq!(
        gw.get("/style.css").header("content-type"),
        Some("text/css; charset=utf-8")
    );

    let r = request(
        gw.addr(),
        "GET",
        "/page.html",
        &[("If-None-Match", &etag)],
        b"",
    );
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
}

#[test]
fn ranges() {
    let gw = gateway();
    let r = request(
        gw.addr(),
        "GET",
        "/page.html",
        &[("Range", "bytes=0-9")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, b"<!doctype ");
    let full = gw.get("/page.html").body.len();
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 0-9/{full}").as_str())
    );
}

#[test]
fn index_documents_redirects_and_404() {
    let gw = gateway();
    assert_eq!(gw.get("/dir/").text(), "<p>directory index</p>\n");
    let r = gw.get("/dir?x=1");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/dir/?x=1"));
    assert_eq!(gw.get("/missing.html").status, 404);
    assert_eq!(
        request(gw.addr(), "POST", "/page.html", &[], b"x").status,
        405
    );
}
