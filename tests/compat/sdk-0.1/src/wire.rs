//! The byte encoding of the contract's types across the native ABI.
//!
//! A native plugin and the gateway may be built by different compilers, so
//! nothing Rust-specific crosses the C boundary: hook inputs and outputs are
//! byte strings in this encoding. It is deliberately plain: integers are
//! little-endian, byte strings and lists carry a `u32` length, options and
//! enums a one-byte tag. Decoding checks every length against what is left,
//! so malformed input is an error, never a panic or a huge allocation.

use crate::types::*;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(&'static str);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed plugin data: {}", self.0)
    }
}

impl std::error::Error for WireError {}

/// A type that crosses the native ABI.
pub trait Wire: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError>;
}

/// Encodes `value` into a fresh buffer.
pub fn encode<T: Wire>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    value.put(&mut out);
    out
}

/// Decodes a whole buffer; trailing bytes are an error.
pub fn decode<T: Wire>(bytes: &[u8]) -> Result<T, WireError> {
    let mut r = Reader { rest: bytes };
    let value = T::get(&mut r)?;
    if r.rest.is_empty() {
        Ok(value)
    } else {
        Err(WireError("trailing bytes"))
    }
}

/// A cursor over bytes being decoded.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.rest.len() {
            return Err(WireError("truncated"));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        let lo = u64::from(self.u32()?);
        let hi = u64::from(self.u32()?);
        Ok(lo | (hi << 32))
    }

    fn bool(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError("bad boolean")),
        }
    }

    fn bytes(&mut self) -> Result<Vec<u8>, WireError> {
        let len = self.u32()? as usize;
        Ok(self.take(len)?.to_vec())
    }

    fn string(&mut self) -> Result<String, WireError> {
        String::from_utf8(self.bytes()?).map_err(|_| WireError("text is not UTF-8"))
    }

    fn slice(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn str(&mut self) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.slice()?).map_err(|_| WireError("text is not UTF-8"))
    }

    /// Name-value pairs, checked once (lengths, UTF-8 names) and then read
    /// in place.
    fn pairs(&mut self) -> Result<Pairs<'a>, WireError> {
        let count = self.count()?;
        let start = self.rest;
        for _ in 0..count {
            self.str()?;
            self.slice()?;
        }
        let used = start.len() - self.rest.len();
        Ok(Pairs {
            count,
            bytes: &start[..used],
        })
    }

    /// A list length, bounded by the bytes left (every item takes at least
    /// one byte), so a forged count cannot reserve gigabytes.
    fn count(&mut self) -> Result<usize, WireError> {
        let n = self.u32()? as usize;
        if n > self.rest.len() {
            return Err(WireError("list longer than its data"));
        }
        Ok(n)
    }

    fn list<T: Wire>(&mut self) -> Result<Vec<T>, WireError> {
        let n = self.count()?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(T::get(self)?);
        }
        Ok(items)
    }

    fn option<T>(
        &mut self,
        get: impl FnOnce(&mut Self) -> Result<T, WireError>,
    ) -> Result<Option<T>, WireError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(get(self)?)),
            _ => Err(WireError("bad option tag")),
        }
    }
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    // Lengths beyond u32 cannot occur: HTTP heads and plugin outputs are
    // far smaller, and the gateway caps them long before.
    out.extend_from_slice(&(n.min(u32::MAX as usize) as u32).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len());
    out.extend_from_slice(bytes);
}

fn put_list<T: Wire>(out: &mut Vec<u8>, items: &[T]) {
    put_u32(out, items.len());
    for item in items {
        item.put(out);
    }
}

fn put_option<T>(out: &mut Vec<u8>, value: &Option<T>, put: impl FnOnce(&mut Vec<u8>, &T)) {
    match value {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            put(out, v);
        }
    }
}

impl Wire for String {
    fn put(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.as_bytes());
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        r.string()
    }
}

impl Wire for (String, String) {
    fn put(&self, out: &mut Vec<u8>) {
        self.0.put(out);
        self.1.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok((r.string()?, r.string()?))
    }
}

impl Wire for Header {
    fn put(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.name.as_bytes());
        put_bytes(out, &self.value);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Header {
            name: r.string()?,
            value: r.bytes()?,
        })
    }
}

impl Wire for Param {
    fn put(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.name.as_bytes());
        put_bytes(out, &self.value);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Param {
            name: r.string()?,
            value: r.bytes()?,
        })
    }
}

/// A request head by reference, for encoders that do not hold a
/// [`RequestHead`] (the gateway encodes straight from its own data).
#[derive(Debug, Clone)]
pub struct RequestHeadRef<'a, H> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub version: &'a str,
    /// How many items `headers` yields.
    pub header_count: usize,
    /// (name, value) pairs.
    pub headers: H,
    pub client_addr: &'a str,
    pub server_addr: &'a str,
    pub app: &'a str,
}

impl<'a, H: Iterator<Item = (&'a [u8], &'a [u8])>> RequestHeadRef<'a, H> {
    /// The same bytes as [`RequestHead`]'s encoding.
    pub fn put(self, out: &mut Vec<u8>) {
        put_bytes(out, self.method.as_bytes());
        put_bytes(out, self.path.as_bytes());
        put_bytes(out, self.query.as_bytes());
        put_bytes(out, self.version.as_bytes());
        put_pairs(out, self.header_count, self.headers);
        put_bytes(out, self.client_addr.as_bytes());
        put_bytes(out, self.server_addr.as_bytes());
        put_bytes(out, self.app.as_bytes());
    }
}

/// A list of (name, value) pairs: the encoding of `Vec<Header>` and of
/// `Vec<Param>`. `count` must be the number of pairs.
pub fn put_pairs<'a>(
    out: &mut Vec<u8>,
    count: usize,
    pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) {
    put_u32(out, count);
    for (name, value) in pairs {
        put_bytes(out, name);
        put_bytes(out, value);
    }
}

/// The encoding of a response head (`on-response` input) by reference.
pub fn put_response_head<'a>(
    out: &mut Vec<u8>,
    status: u16,
    header_count: usize,
    headers: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) {
    out.extend_from_slice(&status.to_le_bytes());
    put_pairs(out, header_count, headers);
}

/// Reads a request head in place (the input of `on-request`).
pub fn decode_request_head(bytes: &[u8]) -> Result<RequestHead<'_>, WireError> {
    let mut r = Reader { rest: bytes };
    let head = r.request_head()?;
    r.finish(head)
}

/// Reads `pairs` in place (the `pairs` type of the WIT contract).
pub fn decode_pairs(bytes: &[u8]) -> Result<Pairs<'_>, WireError> {
    let mut r = Reader { rest: bytes };
    let pairs = r.pairs()?;
    r.finish(pairs)
}

/// Reads the input of `on-response`: status and headers.
pub fn decode_response_head(bytes: &[u8]) -> Result<(u16, Pairs<'_>), WireError> {
    let mut r = Reader { rest: bytes };
    let status = r.u16()?;
    let headers = r.pairs()?;
    r.finish((status, headers))
}

/// Reads the input of `inject-env`: the request head, then the parameters.
pub fn decode_env_input(bytes: &[u8]) -> Result<(RequestHead<'_>, Pairs<'_>), WireError> {
    let mut r = Reader { rest: bytes };
    let head = r.request_head()?;
    let params = r.pairs()?;
    r.finish((head, params))
}

impl<'a> Reader<'a> {
    fn request_head(&mut self) -> Result<RequestHead<'a>, WireError> {
        Ok(RequestHead {
            method: self.str()?,
            path: self.str()?,
            query: self.str()?,
            version: self.str()?,
            headers: self.pairs()?,
            client_addr: self.str()?,
            server_addr: self.str()?,
            app: self.str()?,
        })
    }

    fn finish<T>(&self, value: T) -> Result<T, WireError> {
        if self.rest.is_empty() {
            Ok(value)
        } else {
            Err(WireError("trailing bytes"))
        }
    }
}

impl Wire for Decision {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            Decision::Continue => out.push(0),
            Decision::Deny(status) => {
                out.push(1);
                out.extend_from_slice(&status.to_le_bytes());
            }
            Decision::Respond(response) => {
                out.push(2);
                out.extend_from_slice(&response.status.to_le_bytes());
                put_list(out, &response.headers);
                put_bytes(out, &response.body);
            }
            Decision::Rewrite(rewrite) => {
                out.push(3);
                put_option(out, &rewrite.path, |out, p| p.put(out));
                put_list(out, &rewrite.set_headers);
                put_list(out, &rewrite.remove_headers);
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match r.u8()? {
            0 => Decision::Continue,
            1 => Decision::Deny(r.u16()?),
            2 => Decision::Respond(Response {
                status: r.u16()?,
                headers: r.list()?,
                body: r.bytes()?,
            }),
            3 => Decision::Rewrite(Rewrite {
                path: r.option(Reader::string)?,
                set_headers: r.list()?,
                remove_headers: r.list()?,
            }),
            _ => return Err(WireError("bad decision tag")),
        })
    }
}

impl Wire for HeaderChanges {
    fn put(&self, out: &mut Vec<u8>) {
        put_list(out, &self.set);
        put_list(out, &self.append);
        put_list(out, &self.remove);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(HeaderChanges {
            set: r.list()?,
            append: r.list()?,
            remove: r.list()?,
        })
    }
}

/// A list of parameters (the output of `inject-env`).
impl Wire for Vec<Param> {
    fn put(&self, out: &mut Vec<u8>) {
        put_list(out, self);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        r.list()
    }
}

impl Wire for Capabilities {
    fn put(&self, out: &mut Vec<u8>) {
        let bits = u8::from(self.request_filter)
            | u8::from(self.response_filter) << 1
            | u8::from(self.inject_env) << 2
            | u8::from(self.launcher) << 3;
        out.push(bits);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let bits = r.u8()?;
        Ok(Capabilities {
            request_filter: bits & 1 != 0,
            response_filter: bits & 2 != 0,
            inject_env: bits & 4 != 0,
            launcher: bits & 8 != 0,
        })
    }
}

impl Wire for AppConfig {
    fn put(&self, out: &mut Vec<u8>) {
        self.name.put(out);
        self.options.put(out);
        put_option(out, &self.command, |out, c| c.put(out));
        put_list(out, &self.args);
        put_list(out, &self.env);
        self.root.put(out);
        out.extend_from_slice(&self.instance_max_requests.to_le_bytes());
        self.config_dir.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(AppConfig {
            name: r.string()?,
            options: r.string()?,
            command: r.option(Reader::string)?,
            args: r.list()?,
            env: r.list()?,
            root: r.string()?,
            instance_max_requests: r.u64()?,
            config_dir: r.string()?,
        })
    }
}

impl Wire for RuntimeFile {
    fn put(&self, out: &mut Vec<u8>) {
        self.name.put(out);
        put_bytes(out, &self.contents);
        out.push(u8::from(self.executable));
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(RuntimeFile {
            name: r.string()?,
            contents: r.bytes()?,
            executable: r.bool()?,
        })
    }
}

impl Wire for SpawnSpec {
    fn put(&self, out: &mut Vec<u8>) {
        self.command.put(out);
        put_list(out, &self.args);
        put_list(out, &self.env);
        put_option(out, &self.working_dir, |out, d| d.put(out));
        put_list(out, &self.files);
        out.push(match self.protocol {
            AppProtocol::FastCgi => 0,
            AppProtocol::Cgi => 1,
        });
        put_list(out, &self.params);
        put_list(out, &self.mapping.handles);
        put_option(out, &self.mapping.resource_type, |out, t| t.put(out));
        put_option(out, &self.mapping.fallback, |out, f| f.put(out));
        put_list(out, &self.mapping.static_dirs);
        put_option(out, &self.request_timeout_ms, |out, t| {
            out.extend_from_slice(&t.to_le_bytes())
        });
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(SpawnSpec {
            command: r.string()?,
            args: r.list()?,
            env: r.list()?,
            working_dir: r.option(Reader::string)?,
            files: r.list()?,
            protocol: match r.u8()? {
                0 => AppProtocol::FastCgi,
                1 => AppProtocol::Cgi,
                _ => return Err(WireError("bad protocol tag")),
            },
            params: r.list()?,
            mapping: MappingDefaults {
                handles: r.list()?,
                resource_type: r.option(Reader::string)?,
                fallback: r.option(Reader::string)?,
                static_dirs: r.list()?,
            },
            request_timeout_ms: r.option(Reader::u64)?,
        })
    }
}

/// `Result<T, String>` crosses as a tag and the value or the message.
impl<T: Wire> Wire for Result<T, String> {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            Ok(v) => {
                out.push(0);
                v.put(out);
            }
            Err(message) => {
                out.push(1);
                message.put(out);
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        match r.u8()? {
            0 => Ok(Ok(T::get(r)?)),
            1 => Ok(Err(r.string()?)),
            _ => Err(WireError("bad result tag")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A request head as the gateway encodes it.
    fn head_bytes(params: Option<&[(&[u8], &[u8])]>) -> Vec<u8> {
        let mut out = Vec::new();
        RequestHeadRef {
            method: "GET",
            path: "/a%20b",
            query: "x=1",
            version: "HTTP/1.1",
            header_count: 2,
            headers: [(&b"host"[..], &b"h"[..]), (&b"X-Bin"[..], &[0xff, 0][..])].into_iter(),
            client_addr: "[::1]:5",
            server_addr: "127.0.0.1:80",
            app: "php",
        }
        .put(&mut out);
        if let Some(params) = params {
            put_pairs(&mut out, params.len(), params.iter().copied());
        }
        out
    }

    #[test]
    fn request_heads_are_read_in_place() {
        let bytes = head_bytes(None);
        let head = decode_request_head(&bytes).unwrap();
        assert_eq!(
            (head.method, head.path, head.query),
            ("GET", "/a%20b", "x=1")
        );
        assert_eq!(head.client_ip(), "::1");
        assert_eq!(head.header("x-bin"), Some(&[0xff, 0][..]));
        assert_eq!(head.header("HOST"), Some(&b"h"[..]));
        assert_eq!(head.header("nope"), None);
        let names: Vec<&str> = head.headers.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["host", "X-Bin"]);
        // Every strict prefix is an error, never a panic.
        for cut in 0..bytes.len() {
            assert!(decode_request_head(&bytes[..cut]).is_err(), "prefix {cut}");
        }
        let params: &[(&[u8], &[u8])] = &[(b"SCRIPT_NAME", b"/x.php")];
        let bytes = head_bytes(Some(params));
        let (head, params) = decode_env_input(&bytes).unwrap();
        assert_eq!(head.app, "php");
        assert_eq!(params.get("SCRIPT_NAME"), Some(&b"/x.php"[..]));
        let mut response = Vec::new();
        put_response_head(&mut response, 204, 1, [(&b"a"[..], &b"b"[..])].into_iter());
        let (status, headers) = decode_response_head(&response).unwrap();
        assert_eq!(
            (status, headers.to_headers()),
            (204, vec![Header::new("a", "b")])
        );
    }

    #[test]
    fn pair_names_must_be_text() {
        let mut bytes = Vec::new();
        put_pairs(&mut bytes, 1, [(&[0xff][..], &b"v"[..])].into_iter());
        assert!(decode_pairs(&bytes).is_err());
        let mut bytes = Vec::new();
        put_pairs(&mut bytes, 2, [(&b"a"[..], &b"v"[..])].into_iter());
        assert!(decode_pairs(&bytes).is_err(), "count larger than the pairs");
    }

    fn round_trip<T: Wire + PartialEq + std::fmt::Debug>(value: T) {
        let bytes = encode(&value);
        assert_eq!(decode::<T>(&bytes).unwrap(), value);
        // Every strict prefix is an error, never a panic.
        for cut in 0..bytes.len() {
            assert!(decode::<T>(&bytes[..cut]).is_err(), "prefix {cut} decoded");
        }
    }

    #[test]
    fn every_type_round_trips() {
        round_trip(Decision::Continue);
        round_trip(Decision::Deny(403));
        round_trip(Decision::Respond(Response::text(418, "teapot")));
        round_trip(Decision::Rewrite(Rewrite {
            path: Some("/new?q".into()),
            set_headers: vec![Header::new("x-a", "1")],
            remove_headers: vec!["cookie".into()],
        }));
        round_trip(HeaderChanges {
            set: vec![Header::new("a", "b")],
            append: vec![Header::new("c", "d")],
            remove: vec!["server".into()],
        });
        round_trip(Capabilities::REQUEST_FILTER.with(Capabilities::LAUNCHER));
        round_trip::<Result<Capabilities, String>>(Err("bad config".into()));
        round_trip::<Result<SpawnSpec, String>>(Ok(SpawnSpec {
            command: "/usr/bin/php-cgi".into(),
            args: vec!["-c".into(), "{runtime_dir}/php.ini".into()],
            env: vec![("A".into(), "1".into())],
            working_dir: Some("/srv".into()),
            files: vec![RuntimeFile {
                name: "bridge.py".into(),
                contents: b"print()".to_vec(),
                executable: true,
            }],
            protocol: AppProtocol::Cgi,
            params: vec![("REDIRECT_STATUS".into(), "200".into())],
            mapping: MappingDefaults {
                handles: vec!["*.php".into()],
                resource_type: Some("file".into()),
                fallback: Some("/index.php".into()),
                static_dirs: vec![("/static/".into(), "/srv/static".into())],
            },
            request_timeout_ms: Some(900_000),
        }));
        round_trip(AppConfig {
            name: "site".into(),
            options: "{}".into(),
            command: None,
            args: vec![],
            env: vec![],
            root: "/srv".into(),
            instance_max_requests: 1 << 40,
            config_dir: "/etc/fastgate".into(),
        });
    }

    #[test]
    fn forged_lengths_are_errors() {
        // A list claiming 4 billion headers in a 10-byte message.
        let mut bytes = Vec::new();
        put_u32(&mut bytes, u32::MAX as usize);
        bytes.extend_from_slice(&[0; 6]);
        assert!(decode::<Vec<Param>>(&bytes).is_err());
        assert!(decode::<Decision>(&[9]).is_err());
        assert!(decode::<Decision>(&[0, 0]).is_err(), "trailing byte");
        // Text must be UTF-8.
        assert!(decode::<String>(&[1, 0, 0, 0, 0xff]).is_err());
    }
}
