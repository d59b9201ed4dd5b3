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

/// `page.html` of the fixtures, as the gateway serves it in full.
fn page(gw: &Gateway) -> Response {
    let r = gw.get("/page.html");
    assert_eq!(r.status, 200);
    r
}

#[test]
fn issue13_head_and_206_carry_content_type() {
    let gw = gateway();
    let full = page(&gw);
    let head = request(gw.addr(), "HEAD", "/page.html", &[], b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    for name in [
        "content-type",
        "content-length",
        "etag",
        "last-modified",
        "accept-ranges",
    ] {
        assert_eq!(head.header(name), full.header(name), "{name}");
    }
    assert_eq!(
        head.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let r = request(
        gw.addr(),
        "GET",
        "/page.html",
        &[("Range", "bytes=2-5")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("4"));
    assert_eq!(r.header("etag"), full.header("etag"));
    assert_eq!(r.body, full.body[2..6]);
}

#[test]
fn issue13_a_304_from_if_modified_since_carries_etag_and_last_modified() {
    let gw = gateway();
    let full = page(&gw);
    let last_modified = full.header("last-modified").unwrap();
    let r = request(
        gw.addr(),
        "GET",
        "/page.html",
        &[("If-Modified-Since", last_modified)],
        b"",
    );
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), full.header("etag"));
    assert_eq!(r.header("last-modified"), Some(last_modified));
    assert!(r.header("content-length").is_none() && r.body.is_empty());
    // An older date: the file changed since, 200.
    let r = request(
        gw.addr(),
        "GET",
        "/page.html",
        &[("If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT")],
        b"",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn issue13_if_none_match_takes_precedence_over_if_modified_since() {
    let gw = gateway();
    let full = page(&gw);
    let etag = full.header("etag").unwrap();
    let last_modified = full.header("last-modified").unwrap();
    // A tag that does not match, with a date that does: 200 (RFC 9110
    // §13.1.3: the date is not even looked at).
    let r = request(
        gw.addr(),
        "GET",
        "/page.html",
        &[
            ("If-None-Match", "\"an-older-version\""),
            ("If-Modified-Since", last_modified),
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, full.body);
    // A tag that matches, with a date that does not: 304.
    let r = request(
        gw.addr(),
        "GET",
        "/page.html",
        &[
            ("If-None-Match", etag),
            ("If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT"),
        ],
        b"",
    );
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some(etag));
}

#[test]
fn issue13_if_range_several_ranges_and_unsatisfiable_ranges() {
    let gw = gateway();
    let full = page(&gw);
    let len = full.body.len();
    let etag = full.header("etag").unwrap();
    let last_modified = full.header("last-modified").unwrap();
    // If-Range: the same version (by tag or by date) gets the range...
    for validator in [etag, last_modified] {
        let r = request(
            gw.addr(),
            "GET",
            "/page.html",
            &[("Range", "bytes=0-9"), ("If-Range", validator)],
            b"",
        );
        assert_eq!(r.status, 206, "{validator}");
        assert_eq!(r.body, full.body[..10]);
    }
    // ...another version gets the whole file.
    let r = request(
        gw.addr(),
        "GET",
        "/page.html",
        &[("Range", "bytes=0-9"), ("If-Range", "\"an-older-version\"")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, full.body);
    // Two ranges: multipart/byteranges, each part with its type and range.
    let r = request(
        gw.addr(),
        "GET",
        "/page.html",
        &[("Range", "bytes=0-1,-2")],
        b"",
    );
    assert_eq!(r.status, 206);
    let content_type = r.header("content-type").unwrap();
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{content_type}"));
    let text = r.text();
    assert_eq!(
        text.matches(&format!("--{boundary}\r\n")).count(),
        2,
        "{text}"
    );
    assert!(text.ends_with(&format!("--{boundary}--\r\n")), "{text}");
    assert!(
        text.contains(&format!("Content-Range: bytes 0-1/{len}\r\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Content-Range: bytes {}-{}/{len}\r\n",
            len - 2,
            len - 1
        )),
        "{text}"
    );
    assert!(
        text.contains("Content-Type: text/html; charset=utf-8\r\n"),
        "{text}"
    );
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    // Nothing in the file: 416 with the length (nginx does the same).
    let r = request(
        gw.addr(),
        "GET",
        "/page.html",
        &[("Range", &format!("bytes={len}-"))],
        b"",
    );
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    // A malformed Range is ignored: the whole file.
    let r = request(
        gw.addr(),
        "GET",
        "/page.html",
        &[("Range", "bytes=9-1")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, full.body);
}

/// Files are read whole up to 64 KiB and in 256 KiB chunks beyond, on the
/// connection's thread or on a thread pool (`static_file_io`): every size
/// around those edges comes out byte for byte, ranges too, either way.
#[test]
fn files_of_every_size_around_the_read_edges_are_served_whole() {
    for io in ["inline", "threads"] {
        files_of_every_size_served_whole(io);
    }
}

fn files_of_every_size_served_whole(io: &str) {
    let sizes = [
        0usize, 1, 65_535, 65_536, 65_537, 131_072, 262_143, 262_144, 262_145, 1_048_579,
    ];
    let gw = Gateway::start_with(
        &format!("[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\nstatic_file_io = \"{io}\"\n"),
        |dir| {
            for size in sizes {
                std::fs::write(dir.join(format!("www/f{size}.bin")), payload(size)).unwrap();
            }
        },
    );
    for size in sizes {
        let r = gw.get(&format!("/f{size}.bin"));
        assert_eq!(r.status, 200, "{io} {size}");
        assert_eq!(r.header("content-length"), Some(size.to_string().as_str()));
        assert!(r.body == payload(size), "{io}: {size} bytes differ");
        let head = request(gw.addr(), "HEAD", &format!("/f{size}.bin"), &[], b"");
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
    }
    let r = request(
        gw.addr(),
        "GET",
        "/f1048579.bin",
        &[("Range", "bytes=65530-131080")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert!(
        r.body == payload(1_048_579)[65_530..=131_080],
        "{io}: range differs"
    );
}

/// A wrong `static_file_io` is refused at load, naming the key.
#[test]
fn a_wrong_static_file_io_is_refused_naming_the_key() {
    let (ok, out, err) = check_config(
        "[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\nstatic_file_io = \"aio\"\n",
    );
    assert!(!ok, "{out}");
    assert!(
        err.contains("fastgate.toml:4") && err.contains("static_file_io"),
        "{err}"
    );
    let (ok, out, err) = check_config(
        "[server]\nlisten = \"127.0.0.1:0\"\nroot = \"www\"\nstatic_file_io = \"threads\"\n",
    );
    assert!(ok, "{err}");
    assert!(out.contains("static_file_io = \"threads\""), "{out}");
}
