//! The layouts of native ABI 1 (contract 0.1.0), for a host that still
//! loads plugins built with fastgate-sdk 0.1. Plugins never need this.
//!
//! ABI 1 differs from the current encoding in four records only: the
//! request head has no raw path; a decision has no `continue-with` and a
//! rewrite no parameters; `app-config`'s `instance-max-requests` is a plain
//! `u64` (the value the pool will use); a spawn spec ends after
//! `request-timeout-ms` (no pool proposals, folders or required paths).
//! Everything else (header changes, parameters, capabilities, response
//! heads, results) is encoded as in [`super`].

use super::{Reader, RequestHeadRef, Wire, WireError};
use crate::types::*;

/// A request head in the ABI 1 layout: the current one without the raw
/// path. For `inject-env` the caller appends the parameters.
pub fn put_request_head<'a, H: Iterator<Item = (&'a [u8], &'a [u8])>>(
    head: RequestHeadRef<'a, H>,
    out: &mut Vec<u8>,
) {
    head.put_fields(out, false);
}

/// `app-config` in the ABI 1 layout, where `instance-max-requests` is the
/// value the pool will use (the file's, or the gateway's default).
pub fn put_app_config(app: &AppConfig, instance_max_requests: u64, out: &mut Vec<u8>) {
    app.put_head(out);
    out.extend_from_slice(&instance_max_requests.to_le_bytes());
    app.config_dir.put(out);
}

/// A request filter's answer in the ABI 1 layout.
pub fn decode_decision(bytes: &[u8]) -> Result<Decision, WireError> {
    let mut r = Reader { rest: bytes };
    let decision = match r.u8()? {
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
            params: Vec::new(),
        }),
        _ => return Err(WireError("bad decision tag")),
    };
    r.finish(decision)
}

/// A launcher's answer (`Result<SpawnSpec, String>`) in the ABI 1 layout.
pub fn decode_launch(bytes: &[u8]) -> Result<Result<SpawnSpec, String>, WireError> {
    let mut r = Reader { rest: bytes };
    let answer = match r.u8()? {
        0 => Ok(r.spawn_spec_head()?),
        1 => Err(r.string()?),
        _ => return Err(WireError("bad result tag")),
    };
    r.finish(answer)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::{self, decode_request_head, encode};

    /// The ABI 1 bytes are the current ones without what 0.2 added, so the
    /// current encoder, cut where 0.2 appended, gives them.
    #[test]
    fn old_layouts_are_the_current_ones_without_the_additions() {
        let rewrite = Decision::Rewrite(Rewrite {
            path: Some("/new".into()),
            set_headers: vec![Header::new("x-a", "1")],
            remove_headers: vec!["cookie".into()],
            params: Vec::new(),
        });
        let bytes = encode(&rewrite);
        // 0.2 appends the (empty) parameter list: a u32 count.
        assert_eq!(decode_decision(&bytes[..bytes.len() - 4]).unwrap(), rewrite);
        for d in [Decision::Continue, Decision::Deny(451)] {
            assert_eq!(decode_decision(&encode(&d)).unwrap(), d);
        }
        let continue_with = encode(&Decision::ContinueWith(vec![]));
        assert!(decode_decision(&continue_with).is_err(), "not in ABI 1");

        let spec = SpawnSpec {
            command: "python3".into(),
            request_timeout_ms: Some(5),
            ..SpawnSpec::default()
        };
        let bytes = encode(&Ok::<_, String>(spec.clone()));
        // 0.2 appends three absent options (a byte each) and two empty lists.
        let old = &bytes[..bytes.len() - 3 - 8];
        assert_eq!(decode_launch(old).unwrap(), Ok(spec));
        assert!(decode_launch(&bytes).is_err(), "trailing bytes");
        let refused = encode(&Err::<SpawnSpec, _>("no".to_string()));
        assert_eq!(decode_launch(&refused).unwrap(), Err("no".into()));

        let app = AppConfig {
            name: "a".into(),
            instance_max_requests: Some(7),
            config_dir: "/etc".into(),
            ..AppConfig::default()
        };
        let mut old = Vec::new();
        put_app_config(&app, 7, &mut old);
        let current = encode(&app);
        // 0.2: an option tag before the same eight bytes.
        let tag_at = old.len() - 8 - 4 - 4;
        let mut tagged = old[..tag_at].to_vec();
        tagged.push(1);
        tagged.extend_from_slice(&old[tag_at..]);
        assert_eq!(tagged, current);
        assert_eq!(wire::decode::<AppConfig>(&tagged).unwrap(), app);
    }

    #[test]
    fn an_old_request_head_has_no_raw_path() {
        let head = |out: &mut Vec<u8>, old: bool| {
            let r = RequestHeadRef {
                method: "GET",
                path: "/admin",
                raw_path: "/%61dmin",
                query: "",
                version: "HTTP/1.1",
                header_count: 0,
                headers: std::iter::empty(),
                client_addr: "c",
                server_addr: "s",
                app: "",
            };
            if old {
                put_request_head(r, out)
            } else {
                r.put(out)
            }
        };
        let (mut old, mut current) = (Vec::new(), Vec::new());
        head(&mut old, true);
        head(&mut current, false);
        assert_eq!(current.len(), old.len() + 4 + "/%61dmin".len());
        assert_eq!(decode_request_head(&current).unwrap().raw_path, "/%61dmin");
        assert!(decode_request_head(&old).is_err());
    }
}
