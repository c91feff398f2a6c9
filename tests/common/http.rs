//! A minimal HTTP/1.1 client: one request per connection, the answer as it came (status,
//! headers, body bytes; chunked bodies joined).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn get(port: u16, path: &str) -> std::io::Result<Resp> {
    get_with(port, path, &[])
}

/// A GET of the operator's API, with the test servers' API token.
pub fn api_get(port: u16, path: &str) -> std::io::Result<Resp> {
    let auth = format!("Bearer {}", super::API_TOKEN);
    get_with(port, path, &[("Authorization", &auth)])
}

/// A request to the operator's API (JSON body), with the test servers' API token.
pub fn api_request(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<Resp> {
    let auth = format!("Bearer {}", super::API_TOKEN);
    request(
        port,
        method,
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

/// A viewer token for `viewer`, minted by the API of the server on `port`.
pub fn viewer_token(port: u16, viewer: &str) -> String {
    let r = api_request(
        port,
        "POST",
        &format!("/api/v1/viewers/{viewer}/tokens"),
        "{}",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["token"].as_str().unwrap().to_string()
}

/// A minimal HTTP/1.1 GET (Connection: close), enough to see status, headers and body bytes.
pub fn get_with(port: u16, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Resp> {
    request(port, "GET", path, headers, b"")
}

/// One HTTP/1.1 request with any method and body.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    // A server may answer (413) before reading all of a large body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    let resp = Resp {
        status,
        headers,
        body,
    };
    if resp.status == 200 && method == "GET" && resp.header("content-encoding").is_none() {
        let content_type = resp.header("content-type").unwrap_or("");
        super::conformance::check_response(port, path, content_type, &resp.body);
    }
    Ok(resp)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[end + 2..end + 2 + size]);
        b = &b[end + 2 + size + 2..];
    }
    out
}

/// A tiny server of fixed files on a port of its own (its own origin): each request is
/// answered with the first file whose path prefixes the request's, else 404. The port.
pub fn serve_files(files: Vec<(&'static str, &'static str, Vec<u8>)>) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req.split_whitespace().nth(1).unwrap_or("/");
            let none = Vec::new();
            let (status, ctype, body) = files
                .iter()
                .find(|(p, _, _)| path.starts_with(p))
                .map_or(("404 Not Found", "text/plain", &none), |(_, c, b)| {
                    ("200 OK", *c, b)
                });
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(body);
        }
    });
    port
}
