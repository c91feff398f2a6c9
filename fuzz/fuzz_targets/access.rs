//! What a viewer or API client sends before anything is granted: a playback token (from
//! `?token=` or `Authorization`), `X-Forwarded-*` headers, an API token, an API JSON body;
//! and the playlist text a token is carried into. None of it may panic; a token that verifies
//! can be written into playlists as it is; a carried playlist is the original with the query
//! after each URI; only the API token itself is let in.
#![no_main]

use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue};
use httpd::access::api::ApiTokens;
use httpd::access::{carry, KeyConfig, Verifier};
use httpd::forwarded::TrustedProxies;
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "a-fuzz-secret-that-is-at-least-32-bytes";

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match mode % 4 {
        0 => {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(rest) {
                h.insert(http::header::AUTHORIZATION, v);
            }
            let query = format!("token={text}");
            let given = httpd::access::token(&query, &h).map(str::to_owned);
            let from_header = httpd::access::token("", &h).map(str::to_owned);
            runtime().block_on(async {
                let v = Verifier::new(&KeyConfig {
                    hs256_secrets: vec![SECRET.into()],
                    ..Default::default()
                })
                .unwrap();
                for t in [given, from_header].into_iter().flatten() {
                    if v.verify(&t).await.is_ok() {
                        // What verifies can be carried into playlists as it is.
                        assert!(httpd::access::jwt::token_chars(&t));
                    }
                }
            });
        }
        1 => {
            let t = TrustedProxies::parse(&["10.0.0.0/8".into(), "::1".into()]).unwrap();
            let mut h = HeaderMap::new();
            for (i, part) in rest.split(|b| *b == b'\n').enumerate() {
                if let Ok(v) = HeaderValue::from_bytes(part) {
                    let name = ["x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"][i % 3];
                    h.append(name, v);
                }
            }
            let peer = [10, 0, 0, 1].into();
            let _ = t.client(peer, &h);
            let _ = t.forwarded(peer, &h);
            let stranger = [192, 0, 2, 1].into();
            assert_eq!(t.client(stranger, &h), stranger);
        }
        2 => {
            let query = "token=abc.def.ghi";
            let template = carry::template(&text);
            let out = String::from_utf8(carry::fill(&template, query)).unwrap();
            // The original lines, each URI followed by the query.
            let marks = u32::from_be_bytes(template[..4].try_into().unwrap()) as usize;
            assert_eq!(out.len(), text.len() + marks * (query.len() + 1));
        }
        _ => {
            let tokens = ApiTokens::from_digests([ApiTokens::digest_of(SECRET).as_str()]).unwrap();
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(rest) {
                h.insert(http::header::AUTHORIZATION, v);
            }
            if tokens.allows(&h) {
                assert_eq!(text.strip_prefix("Bearer ").map(str::trim), Some(SECRET));
            }
            let _ = serde_json::from_slice::<httpd::api::admin::NewStream>(rest);
            let _ = ApiTokens::from_digests(text.split(',').map(str::trim));
        }
    }
});
