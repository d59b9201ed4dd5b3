//! Criterion micro-benchmarks of what the gateway does for every request
//! (issue 16): the FastCGI codec, CGI variable building, path decoding and
//! splitting, and the handler-mapping lookup.
//!
//! Each bench calls the function the gateway itself calls on its request
//! path (`fcgi::client::RequestParams::encode` and the `fcgi::proto`
//! encoders, `fcgi::Decoder`, `cgi::params::build`, `route::normalize_path`
//! and `route::Router::route_normalized`), on inputs shaped like real
//! traffic: a browser's headers, a ~35-variable CGI environment, a router
//! built by the real config loader from IIS-style mappings. They measure
//! the pure parts only; sockets, processes and hyper are the load
//! harness's business (docs/benchmarks.md).
//!
//! `cargo bench -p fastgate --bench hot_paths` measures;
//! `cargo test -p fastgate --bench hot_paths` runs each bench once (a
//! debug build) to check that they still work.

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::BytesMut;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method, Uri, Version};

use fastgate::cgi::ScriptTarget;
use fastgate::cgi::params::{self, Params, RequestInfo};
use fastgate::config;
use fastgate::fcgi::Decoder;
use fastgate::fcgi::client::RequestParams;
use fastgate::fcgi::proto::{self, FLAG_KEEP_CONN, Record, record_type, role};
use fastgate::route::{Router, normalize_path};

/// What a socket read typically hands the decoder: one Ethernet frame's
/// worth of a loopback or LAN stream.
const READ_SIZE: usize = 1500;

/// The STDOUT record size of the response streams: an app writes a record
/// per buffer it flushes, and 8 KiB is a common buffer (the codec's own
/// maximum, 64 KiB less one byte, would mean fewer records to decode).
const RECORD_SIZE: usize = 8 * 1024;

/// The headers of a browser's GET of a PHP page (13 of them, a session
/// cookie among them), as Firefox sends them.
fn browser_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("host", "www.example.org"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-GB,en;q=0.7,fr;q=0.3"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("referer", "https://www.example.org/blog/2024/05/"),
        (
            "cookie",
            "PHPSESSID=9c1185a5c5e9fc54612808977ee8f548b2258d31; wp-settings-1=libraryContent%3Dbrowse; theme=dark",
        ),
        ("connection", "keep-alive"),
        ("upgrade-insecure-requests", "1"),
        ("sec-fetch-dest", "document"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-site", "same-origin"),
        ("cache-control", "max-age=0"),
    ] {
        headers.append(name, HeaderValue::from_static(value));
    }
    headers
}

/// The target the router gives `*.php` for `/blog/index.php/2024/05/hello-world`.
fn php_target() -> ScriptTarget {
    ScriptTarget {
        script_name: "/blog/index.php".into(),
        path_info: "/2024/05/hello-world".into(),
        script_filename: PathBuf::from("/var/www/site/blog/index.php"),
        document_root: PathBuf::from("/var/www/site"),
        document_uri: "/blog/index.php/2024/05/hello-world".into(),
    }
}

/// The pieces of one request that `cgi::params::build` reads.
struct Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    target: ScriptTarget,
    /// `[app.params]`, as a php app's config gives them.
    extra: Vec<(String, String)>,
}

impl Request {
    fn browser_get() -> Request {
        Request {
            method: Method::GET,
            uri: Uri::from_static("/blog/index.php/2024/05/hello-world?replytocom=42&lang=en"),
            headers: browser_headers(),
            target: php_target(),
            extra: vec![("PHP_VALUE".into(), "max_execution_time=30".into())],
        }
    }

    fn info(&self) -> RequestInfo<'_> {
        RequestInfo {
            method: &self.method,
            uri: &self.uri,
            version: Version::HTTP_11,
            headers: &self.headers,
            remote_addr: SocketAddr::from(([192, 0, 2, 17], 51234)),
            local_addr: SocketAddr::from(([198, 51, 100, 1], 443)),
            content_length: 0,
            https: false,
            server_software: "fastgate/0.1.0",
        }
    }

    fn params(&self) -> Params {
        params::build(&self.info(), &self.target, &self.extra)
    }
}

/// A whole request as the exchange writes it (`fcgi::client::Exchange`):
/// BEGIN_REQUEST, the PARAMS stream, the body as STDIN records, the STDIN
/// terminator.
fn encode_request(params: &Params, body: &[u8], out: &mut BytesMut) {
    proto::encode_begin_request(1, role::RESPONDER, FLAG_KEEP_CONN, out);
    if let Err(e) = proto::encode_params(1, params.iter(), out) {
        panic!("the bench's parameters fit in a record: {e}");
    }
    proto::encode_stream(record_type::STDIN, 1, body, out);
    proto::encode_stream_end(record_type::STDIN, 1, out);
}

fn fcgi_encode(c: &mut Criterion) {
    let params = Request::browser_get().params();
    let mut group = c.benchmark_group("fcgi_encode");
    let mut stream = BytesMut::new();
    if let Err(e) = proto::encode_params(1, params.iter(), &mut stream) {
        panic!("the bench's parameters encode: {e}");
    }
    group.throughput(Throughput::Bytes(stream.len() as u64));
    // What `pool::exchange` calls once per request.
    group.bench_function(format!("params_{}_vars", params.len()), |b| {
        b.iter(|| RequestParams::encode(black_box(&params).iter()))
    });
    for body_len in [0usize, 64 * 1024] {
        let body = vec![b'x'; body_len];
        let mut out = BytesMut::new();
        encode_request(&params, &body, &mut out);
        group.throughput(Throughput::Bytes(out.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("request_stdin", body_len),
            &body,
            |b, body| {
                b.iter(|| {
                    let mut out = BytesMut::with_capacity(1024);
                    encode_request(black_box(&params), black_box(body), &mut out);
                    out
                })
            },
        );
    }
    group.finish();
}

/// A response stream as an app sends it: a CGI head and `body_len` bytes
/// as STDOUT records of `RECORD_SIZE` bytes, the STDOUT terminator and
/// END_REQUEST.
fn response_stream(body_len: usize) -> Vec<u8> {
    let mut body = b"Status: 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n".to_vec();
    body.resize(body.len() + body_len, b'a');
    let mut out = BytesMut::new();
    for write in body.chunks(RECORD_SIZE) {
        proto::encode_stream(record_type::STDOUT, 1, write, &mut out);
    }
    proto::encode_stream_end(record_type::STDOUT, 1, &mut out);
    Record::EndRequest {
        request_id: 1,
        app_status: 0,
        protocol_status: proto::protocol_status::REQUEST_COMPLETE,
    }
    .encode(&mut out);
    out.to_vec()
}

/// Decodes every record of `buf`; the records' count, so that nothing is
/// optimised away.
fn decode_all(decoder: &mut Decoder, buf: &mut BytesMut) -> usize {
    let mut records = 0;
    loop {
        match decoder.decode(buf) {
            Ok(Some(record)) => {
                black_box(record);
                records += 1;
            }
            Ok(None) => return records,
            Err(e) => panic!("the bench's stream decodes: {e}"),
        }
    }
}

/// As `fcgi::client::Connection` reads: each socket read appended to one
/// buffer (16 KiB to start), records taken off its front after each read.
fn decode_in_reads(stream: &[u8]) -> usize {
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut records = 0;
    for read in stream.chunks(READ_SIZE) {
        buf.extend_from_slice(read);
        records += decode_all(&mut decoder, &mut buf);
    }
    records
}

fn fcgi_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("fcgi_decode");
    for (name, body_len) in [("1KiB", 1024), ("64KiB", 64 * 1024), ("1MiB", 1024 * 1024)] {
        let stream = response_stream(body_len);
        group.throughput(Throughput::Bytes(stream.len() as u64));
        // The whole stream in the buffer: the codec's own cost (content is
        // split off without copying). The copy into a fresh buffer is setup.
        group.bench_with_input(BenchmarkId::new("whole", name), &stream, |b, stream| {
            b.iter_batched_ref(
                || BytesMut::from(&stream[..]),
                |buf| decode_all(&mut Decoder::new(), buf),
                BatchSize::LargeInput,
            )
        });
        // In 1500-byte reads, the copy out of each read included: what a
        // response costs the gateway between the socket and hyper.
        group.bench_with_input(
            BenchmarkId::new("reads_of_1500", name),
            &stream,
            |b, stream| b.iter(|| decode_in_reads(black_box(stream))),
        );
    }
    group.finish();
}

fn cgi_params(c: &mut Criterion) {
    let request = Request::browser_get();
    let mut group = c.benchmark_group("cgi_params");
    // `app::App::run` builds the variables once per request, then the
    // pool's exchange encodes them once: both, then the build alone.
    group.bench_function("build_13_headers", |b| {
        b.iter(|| params::build(black_box(&request.info()), &request.target, &request.extra))
    });
    group.bench_function("build_and_encode_13_headers", |b| {
        b.iter(|| {
            let params = params::build(black_box(&request.info()), &request.target, &request.extra);
            RequestParams::encode_sized(params.iter(), params.encoded_len_bound())
        })
    });
    group.finish();
}

/// A site on disk and the router the config loader gives for `text`: the
/// same steps as `fastgate serve` (without launchers, which these mappings
/// do not use).
struct Site {
    _dir: tempfile::TempDir,
    router: Router,
}

impl Site {
    fn new(text: &str, files: &[&str]) -> Site {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("a temporary folder for the bench's site: {e}"),
        };
        for file in files {
            let path = dir.path().join("www").join(file.trim_start_matches('/'));
            if let Some(parent) = path.parent()
                && let Err(e) = std::fs::create_dir_all(parent)
            {
                panic!("creating {}: {e}", parent.display());
            }
            if let Err(e) = std::fs::write(&path, "x") {
                panic!("writing {}: {e}", path.display());
            }
        }
        let config = match config::load_str(text, Some(&dir.path().join("fastgate.toml"))) {
            Ok(config) => config,
            Err(e) => panic!("the bench's config loads: {e}"),
        };
        let problems = config::check_mappings(&config, &config.apps);
        assert!(problems.is_empty(), "the bench's mappings: {problems:?}");
        let folders = config::static_folders(&config.static_folders, &config.apps);
        let router = Router::new(&config.server, &config.apps, &folders);
        Site { _dir: dir, router }
    }

    /// What `http::Gateway` does per request: decode and normalise the
    /// path once, then route it.
    fn route(&self, raw: &str) -> Option<fastgate::route::Route> {
        let path = normalize_path(raw).ok()?;
        Some(self.router.route_normalized(&Method::GET, raw, &path))
    }
}

/// One `*.php` mapping that checks no file (`resource_type =
/// "unspecified"`): routing a script is then decoding, normalising and the
/// SCRIPT_NAME / PATH_INFO split, with no `stat`.
const SPLIT_ONLY: &str = r#"
[server]
root = "www"

[[app]]
name = "php"
command = "php-cgi"
handles = ["*.php"]
resource_type = "unspecified"
"#;

fn path_split(c: &mut Criterion) {
    let site = Site::new(SPLIT_ONLY, &[]);
    let mut group = c.benchmark_group("path_split");
    for (name, raw) in [
        ("short", "/index.php"),
        (
            "long_path_info",
            "/blog/2024/05/archive/./index.php/category/rust/tag/fastcgi//page/12/comments/",
        ),
        (
            "percent_encoded",
            "/caf%C3%A9/men%C3%BC/%E2%9C%93/info.php/a%20b/%D0%BF%D1%83%D1%82%D1%8C/c%2Bd",
        ),
    ] {
        assert!(
            matches!(site.route(raw), Some(fastgate::route::Route::App { .. })),
            "{raw} goes to the app"
        );
        group.bench_with_input(BenchmarkId::new("normalize", name), raw, |b, raw| {
            b.iter(|| normalize_path(black_box(raw)))
        });
        group.bench_with_input(
            BenchmarkId::new("normalize_and_split", name),
            raw,
            |b, raw| b.iter(|| site.route(black_box(raw))),
        );
    }
    group.finish();
}

/// IIS-style handler mappings as a mixed site has them: script extensions
/// first (IIS lists them so), then apps at URL prefixes and mounts, an
/// exact path, and the static files under the root for the rest.
const MAPPINGS: &str = r#"
[server]
root = "www"
index = ["index.php", "index.html"]

[[app]]
name = "php"
command = "php-cgi"
handles = ["*.php", "*.phtml"]

[[app]]
name = "python"
command = "python3"
handles = ["*.py"]

[[app]]
name = "perl"
command = "perl"
handles = ["*.pl", "*.cgi"]

[[app]]
name = "aspnet"
command = "fastcgi-mono-server4"
handles = ["*.aspx", "*.ashx", "*.asmx"]

[[app]]
name = "ruby"
command = "ruby"
handles = ["*.rb"]

[[app]]
name = "lua"
command = "lua"
handles = ["*.lua"]

[[app]]
name = "django-admin"
command = "python3"
handles = ["/admin/*"]
resource_type = "unspecified"

[[app]]
name = "api-v1"
command = "api1"
handles = ["/api/v1/*"]
resource_type = "unspecified"

[[app]]
name = "api-v2"
command = "api2"
handles = ["/api/v2/*"]
resource_type = "unspecified"

[[app]]
name = "health"
command = "health"
handles = ["/healthz"]
resource_type = "unspecified"

[[app]]
name = "trac"
command = "trac.fcgi"
handles = ["/trac/*"]
mount = "/trac"
resource_type = "unspecified"

[[app]]
name = "git"
command = "git-http-backend"
handles = ["/git/*"]
mount = "/git"
resource_type = "unspecified"

[[app]]
name = "wiki"
command = "wiki"
handles = ["/wiki/*"]
mount = "/wiki"
resource_type = "unspecified"

[[app]]
name = "shop"
command = "shop"
handles = ["/shop/*"]
mount = "/shop"
resource_type = "unspecified"
"#;

fn mapping_lookup(c: &mut Criterion) {
    let site = Site::new(MAPPINGS, &["/blog/index.php", "/css/site.css"]);
    let mut group = c.benchmark_group("mapping_lookup");
    for (name, raw, app) in [
        // `*.php` with resource_type "file": one stat of the script.
        ("first_mapping", "/blog/index.php", Some("php")),
        ("last_mapping", "/shop/cart/items/42", Some("shop")),
        // No mapping: every pattern tried, then the file under the root.
        ("static_fallback", "/css/site.css", None),
    ] {
        let routed = site.route(raw);
        match (&routed, app) {
            (Some(fastgate::route::Route::App { app: got, .. }), Some(want)) => {
                assert_eq!(&**got, want, "{raw}")
            }
            (Some(fastgate::route::Route::Static { .. }), None) => {}
            (other, _) => panic!("{raw} routed to {other:?}"),
        }
        group.bench_with_input(BenchmarkId::from_parameter(name), raw, |b, raw| {
            b.iter(|| site.route(black_box(raw)))
        });
    }
    group.finish();
}

/// One second of warm-up and three of measurement are plenty for functions
/// this small, and keep a run short on a shared machine (arguments given
/// to `cargo bench -- ...` still win).
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = fcgi_encode, fcgi_decode, cgi_params, path_split, mapping_lookup
}
criterion_main!(benches);
