//! Property tests of the framing guard (issue 15): random request sequences
//! on one connection, with random header orders, name casings, whitespace
//! and read sizes, fed through [`Guarded`] over an in-memory stream.
//! Well-formed keep-alive sequences reach hyper byte for byte; a request
//! carrying both Content-Length and Transfer-Encoding, wherever it is in
//! the sequence and whatever came before it, never does.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use proptest::prelude::*;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Guarded, Refusals};
use crate::config::HeadLimits;
use crate::http::limits::Refusal;

/// A client's bytes, handed out in reads of the given sizes (in turn);
/// what is written to it is dropped.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    sizes: Vec<usize>,
    turn: usize,
}

impl AsyncRead for Trickle {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let size = this.sizes[this.turn % this.sizes.len()].max(1);
        this.turn += 1;
        let n = size.min(this.data.len() - this.pos).min(buf.remaining());
        buf.put_slice(&this.data[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Trickle {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(data.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What hyper would read through the guard, and the refusal left for the
/// service (with the request's position), if any. The input never pauses,
/// so the guard only waits (`Pending`) after a refusal.
fn through_guard(
    input: &[u8],
    sizes: Vec<usize>,
    hyper_read: usize,
) -> (Vec<u8>, Option<(u64, Refusal)>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _entered = runtime.enter();
    let refusals = Arc::new(Refusals::default());
    let client = Trickle {
        data: input.to_vec(),
        pos: 0,
        sizes,
        turn: 0,
    };
    let mut guard = Guarded::new(
        client,
        Duration::from_secs(30),
        HeadLimits::default(),
        refusals.clone(),
    );
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    let mut chunk = vec![0u8; hyper_read];
    // Every read moves at least one byte on, so this many always suffice.
    for _ in 0..input.len() * 4 + 64 {
        let mut buf = ReadBuf::new(&mut chunk);
        match Pin::new(&mut guard).poll_read(&mut cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => break,
            Poll::Ready(Ok(())) => out.extend_from_slice(buf.filled()),
            Poll::Ready(Err(_)) | Poll::Pending => break,
        }
    }
    let refused = refusals
        .refused
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    (out, refused)
}

/// A header name in a random casing.
fn cased(name: &'static str) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<bool>(), name.len()).prop_map(move |upper| {
        name.chars()
            .zip(upper)
            .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

/// Optional whitespace around a value.
fn ows() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just(" "), Just("  "), Just("\t"), Just(" \t")]
}

fn header(name: &'static str, value: String) -> impl Strategy<Value = String> {
    (cased(name), ows(), ows())
        .prop_map(move |(name, before, after)| format!("{name}:{before}{value}{after}\r\n"))
}

/// Harmless extra headers, Upgrade and TE among them.
fn extra_headers() -> impl Strategy<Value = Vec<String>> {
    let one = prop_oneof![
        header("accept", "*/*".into()),
        header("user-agent", "prop/1.0".into()),
        header("upgrade", "websocket".into()),
        header("connection", "keep-alive".into()),
        header("te", "identity, chunked".into()),
        header("x-note", "a,b; c=d".into()),
    ];
    proptest::collection::vec(one, 0..4)
}

/// A chunked body of `data`, cut at the given sizes, with optional trailers.
fn chunked(data: &[u8], cuts: &[usize], trailer: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut turn = 0;
    while !rest.is_empty() {
        let n = cuts[turn % cuts.len()].clamp(1, rest.len());
        turn += 1;
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    out.extend_from_slice(b"0\r\n");
    if trailer {
        out.extend_from_slice(b"X-Sum: 1\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Length(Vec<u8>),
    Chunked(Vec<u8>, Vec<usize>, bool),
}

fn body() -> impl Strategy<Value = Body> {
    let data = proptest::collection::vec(any::<u8>(), 1..300);
    prop_oneof![
        Just(Body::None),
        data.clone().prop_map(Body::Length),
        (
            data,
            proptest::collection::vec(1usize..50, 1..4),
            any::<bool>()
        )
            .prop_map(|(d, c, t)| Body::Chunked(d, c, t)),
    ]
}

/// One well-formed request: its headers shuffled, its framing header among them.
fn request() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("DELETE")];
    (method, "[a-z]{1,8}", body(), extra_headers())
        .prop_flat_map(|(method, path, body, extra)| {
            let framing: BoxedStrategy<Option<String>> = match &body {
                Body::None => Just(None).boxed(),
                Body::Length(d) => header("content-length", d.len().to_string())
                    .prop_map(Some)
                    .boxed(),
                Body::Chunked(..) => header("transfer-encoding", "chunked".into())
                    .prop_map(Some)
                    .boxed(),
            };
            let headers = (framing, header("host", "x".into()), Just(extra))
                .prop_map(|(framing, host, mut headers)| {
                    headers.push(host);
                    headers.extend(framing);
                    headers
                })
                .prop_flat_map(|headers| Just(headers).prop_shuffle());
            (Just((method, path, body)), headers)
        })
        .prop_map(|((method, path, body), headers)| {
            let mut out = format!("{method} /{path} HTTP/1.1\r\n").into_bytes();
            for h in headers {
                out.extend_from_slice(h.as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            match body {
                Body::None => {}
                Body::Length(d) => out.extend_from_slice(&d),
                Body::Chunked(d, cuts, trailer) => {
                    out.extend_from_slice(&chunked(&d, &cuts, trailer))
                }
            }
            out
        })
}

/// A request with both Content-Length and Transfer-Encoding, in any order,
/// casing and whitespace, with any mix of valid and invalid values.
fn smuggling() -> impl Strategy<Value = Vec<u8>> {
    let length = prop_oneof![
        Just("4"),
        Just("04"),
        Just("+4"),
        Just("4, 4"),
        Just("0"),
        Just("")
    ];
    let coding = prop_oneof![
        Just("chunked"),
        Just("Chunked"),
        Just("gzip, chunked"),
        Just("identity"),
        Just("chunked, chunked")
    ];
    (length, coding, extra_headers())
        .prop_flat_map(|(length, coding, extra)| {
            (
                header("content-length", length.into()),
                header("transfer-encoding", coding.into()),
                header("host", "x".into()),
                Just(extra),
            )
                .prop_map(|(cl, te, host, mut headers)| {
                    headers.extend([cl, te, host]);
                    headers
                })
                .prop_flat_map(|headers| Just(headers).prop_shuffle())
        })
        .prop_map(|headers| {
            let mut out = b"POST /s HTTP/1.1\r\n".to_vec();
            for h in headers {
                out.extend_from_slice(h.as_bytes());
            }
            out.extend_from_slice(b"\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n");
            out
        })
}

fn reads() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(prop_oneof![1usize..8, 8usize..200, Just(8192)], 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A well-formed keep-alive sequence reaches hyper unchanged, however
    /// its bytes arrive.
    #[test]
    fn well_formed_sequences_pass_unchanged(
        requests in proptest::collection::vec(request(), 1..5),
        sizes in reads(),
        hyper_read in prop_oneof![Just(1usize), 2usize..64, Just(8192)],
    ) {
        let input = requests.concat();
        let (out, refused) = through_guard(&input, sizes, hyper_read);
        prop_assert_eq!(refused, None);
        prop_assert_eq!(out, input);
    }

    /// A request with both framing headers, after any well-formed ones, is
    /// refused at its own position, and nothing of it (or after it) reaches
    /// hyper but the small stand-in.
    #[test]
    fn content_length_with_transfer_encoding_never_passes(
        before in proptest::collection::vec(request(), 0..4),
        smuggle in smuggling(),
        sizes in reads(),
        hyper_read in prop_oneof![2usize..64, Just(8192)],
    ) {
        let clean = before.concat();
        let input = [clean.clone(), smuggle].concat();
        let (out, refused) = through_guard(&input, sizes, hyper_read);
        let (at, _) = refused.expect("refused");
        prop_assert_eq!(at, before.len() as u64);
        prop_assert!(out.starts_with(&clean));
        let rest = &out[clean.len()..];
        prop_assert!(rest.starts_with(b"POST /s HTTP/1.1\r\nhost: refused\r\n\r\n"), "{:?}", String::from_utf8_lossy(rest));
        prop_assert_eq!(rest.len(), "POST /s HTTP/1.1\r\nhost: refused\r\n\r\n".len());
    }
}
