//! What a client may hold, tried as an attacker would: silent and half-sent HTTP connections
//! are closed after the header timeout while everyone else is served, one address cannot take
//! more than its share of connections, requests waiting for parts are capped, RTMP clients
//! that never publish or send an AMF0 bomb lose only their own connection, and a flood of
//! wrong keys beside 5,000 half-sent requests leaves a publisher and an hls.js viewer be.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const LONG: Duration = Duration::from_secs(60);

/// Whether the server closed `c` (EOF or reset) within `within`.
fn closed_within(c: &mut TcpStream, within: Duration) -> bool {
    c.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an error response before the close
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn silent_and_half_sent_clients_cost_only_their_own_connections() {
    let srv = Server::start("[http]\nheader_timeout_secs = 3\n");
    let mut held = Vec::new();
    for i in 0..2000 {
        let mut c = TcpStream::connect(("127.0.0.1", srv.http)).unwrap();
        if i % 2 == 1 {
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
        }
        held.push(c);
    }
    // Everyone else is served meanwhile.
    let t = Instant::now();
    let r = get(srv.http, "/healthz").unwrap();
    assert_eq!(r.status, 200);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // And each of them is closed once its time is up.
    for (i, c) in held.iter_mut().enumerate() {
        assert!(
            closed_within(c, LONG),
            "connection {i} ({}) still open",
            if i % 2 == 1 { "half-sent" } else { "silent" }
        );
    }
    assert_eq!(get(srv.http, "/healthz").unwrap().status, 200);
}

#[test]
fn a_keep_alive_connection_is_closed_once_idle() {
    let srv = Server::start("[http]\nheader_timeout_secs = 2\n");
    let mut c = TcpStream::connect(("127.0.0.1", srv.http)).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.ends_with(b"ok\n") {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let t = Instant::now();
    assert!(closed_within(&mut c, LONG));
    assert!(t.elapsed() >= Duration::from_secs(1), "not before its time");
}

/// A connection from `source` (any 127.0.0.0/8 address works on Linux's loopback).
fn connect_from(source: [u8; 4], port: u16) -> std::io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4()?;
        s.bind((std::net::Ipv4Addr::from(source), 0).into())?;
        let c = s.connect(([127, 0, 0, 1], port).into()).await?;
        c.into_std()
    })
    .and_then(|c| {
        c.set_nonblocking(false)?;
        Ok(c)
    })
}

fn healthz_on(mut c: TcpStream) -> String {
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    c.set_read_timeout(Some(LONG)).unwrap();
    let mut got = String::new();
    let _ = c.read_to_string(&mut got);
    got
}

#[test]
fn one_address_cannot_take_every_connection() {
    let srv = Server::start("[http]\nmax_connections_per_ip = 4\n");
    let mut five: Vec<TcpStream> = (0..5)
        .map(|_| connect_from([127, 0, 0, 5], srv.http).unwrap())
        .collect();
    // One of five from the same address is closed at once (the one the server takes last: on a
    // loaded machine that need not be the fifth made), the other four stay open...
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let closed: Vec<usize> = loop {
        let closed: Vec<usize> = (0..5)
            .filter(|&i| closed_within(&mut five[i], Duration::from_millis(100)))
            .collect();
        if !closed.is_empty() || std::time::Instant::now() > deadline {
            break closed;
        }
    };
    assert_eq!(closed.len(), 1, "closed: {closed:?}");
    let mut four: Vec<TcpStream> = five
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !closed.contains(i))
        .map(|(_, c)| c)
        .collect();
    // ... while another address is served.
    let other = healthz_on(connect_from([127, 0, 0, 6], srv.http).unwrap());
    assert!(other.starts_with("HTTP/1.1 200"), "{other}");
    // One of the four goes: there is room again.
    drop(four.pop());
    let again = wait_for("room for the address again", LONG, || {
        let got = healthz_on(connect_from([127, 0, 0, 5], srv.http).ok()?);
        got.starts_with("HTTP/1.1 200").then_some(got)
    });
    assert!(again.contains("ok"));
}

#[test]
fn requests_waiting_for_parts_are_capped() {
    let srv = Server::start("[http]\nmax_held_requests = 2\n");
    let _p = Publisher::rtmp(&srv.rtmp_url(KEY), 30);
    let playlist = wait_for("the stream live", LONG, || {
        let p = get(srv.http, "/live/demo/video/index.m3u8").ok()?.text();
        p.contains("#EXT-X-PART:").then_some(p)
    });
    // Two segments ahead of the last listed one: a while to wait.
    let next = tags(&playlist, "#EXT-X-MEDIA-SEQUENCE:")[0][22..]
        .parse::<u64>()
        .unwrap()
        + tags(&playlist, "#EXTINF").len() as u64
        + 2;
    let path = format!("/live/demo/video/index.m3u8?_HLS_msn={next}&_HLS_part=0");
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let (port, path) = (srv.http, path.clone());
            std::thread::spawn(move || get(port, &path).unwrap().status)
        })
        .collect();
    wait_for("both requests waiting", LONG, || {
        let api = api_get(srv.http, "/api/v1/streams").ok()?.text();
        api.contains("\"held_requests\":2").then_some(())
    });
    // A third is turned away at once.
    let refused = get(srv.http, &path).unwrap();
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.header("retry-after"), Some("1"), "{refused:?}");
    for w in waiting {
        assert_eq!(w.join().unwrap(), 200, "the held requests are answered");
    }
    assert_eq!(get(srv.http, &path).unwrap().status, 200, "room again");
}

/// An RTMP client past the handshake (C0+C1, S0+S1+S2 read, C2 sent).
fn rtmp_handshaken(port: u16) -> TcpStream {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(LONG)).unwrap();
    let mut hello = vec![3u8];
    hello.resize(1 + 1536, 0);
    c.write_all(&hello).unwrap();
    let mut answer = vec![0u8; 1 + 2 * 1536];
    c.read_exact(&mut answer).unwrap();
    assert_eq!(answer[0], 3);
    c.write_all(&answer[1..1 + 1536]).unwrap();
    c
}

#[test]
fn rtmp_clients_that_never_publish_or_send_a_bomb_lose_only_their_connection() {
    use ingest::rtmp::chunk::{types, write_message};
    let srv = Server::start("[rtmp]\npublish_timeout_secs = 3\n");
    let publisher = Publisher::rtmp(&srv.rtmp_url(KEY), 40);
    wait_for("the stream to be live", LONG, || {
        get(srv.http, "/live/demo/video/index.m3u8")
            .ok()
            .filter(|r| r.status == 200)
    });

    // A `connect` whose command object nests 100 000 arrays (half a megabyte, sent in 128-byte
    // chunks as RTMP's default chunk size has it): refused at the message limit or the AMF0
    // depth limit, whichever comes first, without the server holding it.
    let mut bomb_body = vec![0x02, 0, 7];
    bomb_body.extend_from_slice(b"connect");
    bomb_body.extend_from_slice(&[0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
    let mut deep = bomb_body.clone();
    for _ in 0..100_000 {
        bomb_body.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
    }
    // Small enough for the message limit, so it reaches the AMF0 decoder.
    for _ in 0..1_000 {
        deep.extend_from_slice(&[0x03, 0, 1, b'a']);
    }
    let mut bombs = Vec::new();
    for body in [&bomb_body, &deep] {
        let mut c = rtmp_handshaken(srv.rtmp);
        let mut msg = Vec::new();
        write_message(&mut msg, 3, 0, types::COMMAND_AMF0, 0, body, 128);
        // The server may close before it has read everything.
        let _ = c.write_all(&msg);
        bombs.push(c);
    }
    for (i, c) in bombs.iter_mut().enumerate() {
        assert!(closed_within(c, LONG), "bomb {i} still open");
    }

    // Clients that connect and never get to publishing: silent before the handshake, silent
    // after it, and one trickling pings after it.
    let t = Instant::now();
    let mut silent = TcpStream::connect(("127.0.0.1", srv.rtmp)).unwrap();
    let mut handshaken = rtmp_handshaken(srv.rtmp);
    let mut trickle = rtmp_handshaken(srv.rtmp);
    trickle
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 1024];
    let mut trickle_closed = false;
    while t.elapsed() < Duration::from_secs(30) {
        // An acknowledgement (type 3) every half second: bytes, but never a publish.
        let mut ack = Vec::new();
        write_message(
            &mut ack,
            2,
            0,
            types::ACKNOWLEDGEMENT,
            0,
            &[0, 0, 0, 1],
            128,
        );
        if trickle.write_all(&ack).is_err() {
            trickle_closed = true;
            break;
        }
        match trickle.read(&mut buf) {
            Ok(0) => {
                trickle_closed = true;
                break;
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                trickle_closed = true;
                break;
            }
        }
    }
    assert!(
        trickle_closed,
        "a client sending bytes but never publishing was kept"
    );
    assert!(closed_within(&mut silent, LONG), "a silent client was kept");
    assert!(
        closed_within(&mut handshaken, LONG),
        "a handshaken, silent client was kept"
    );
    assert!(
        t.elapsed() >= Duration::from_secs(2),
        "closed before the publish timeout"
    );

    // Everyone else went on: the HTTP side and the real publisher.
    assert_eq!(get(srv.http, "/healthz").unwrap().status, 200);
    assert_advances(&srv, "demo");
    let log = srv.log_text();
    assert!(log.contains("did not publish within 3s"), "{log}");
    assert!(log.contains("nested too deep"), "{log}");
    drop(publisher);
}

/// One publish attempt with `key` over a raw RTMP connection (connect, createStream, publish);
/// whether the server closed the connection within `LONG` (a refused key is answered after
/// the address's delay, then closed).
fn rtmp_publish_attempt(port: u16, key: &str) -> bool {
    use ingest::rtmp::amf0::{self, Amf0};
    use ingest::rtmp::chunk::{types, write_message};
    let command = |name: &str, txn: f64, args: &[Amf0]| {
        let mut b = Vec::new();
        amf0::encode(&amf0::string(name), &mut b);
        amf0::encode(&Amf0::Number(txn), &mut b);
        for a in args {
            amf0::encode(a, &mut b);
        }
        b
    };
    let Ok(mut c) = std::panic::catch_unwind(|| rtmp_handshaken(port)) else {
        return false;
    };
    let mut msg = Vec::new();
    let connect = amf0::object([
        ("app", amf0::string("live")),
        ("type", amf0::string("nonprivate")),
    ]);
    write_message(
        &mut msg,
        3,
        0,
        types::COMMAND_AMF0,
        0,
        &command("connect", 1.0, &[connect]),
        128,
    );
    write_message(
        &mut msg,
        3,
        0,
        types::COMMAND_AMF0,
        0,
        &command("createStream", 2.0, &[Amf0::Null]),
        128,
    );
    let publish = command(
        "publish",
        3.0,
        &[Amf0::Null, amf0::string(key), amf0::string("live")],
    );
    write_message(&mut msg, 8, 0, types::COMMAND_AMF0, 1, &publish, 128);
    if c.write_all(&msg).is_err() {
        return true;
    }
    closed_within(&mut c, LONG)
}

/// The attacks of issue 12 at once, while a real publisher and a viewer in hls.js go on:
/// 5,000 half-sent HTTP requests held open, and a flood of publishes with wrong keys (RTMP
/// from several threads, WHIP offers). Each costs only its own connection: `/healthz` answers
/// throughout, the viewer plays on, the stream advances, and the right key still gets in.
#[test]
fn under_half_sent_requests_and_a_flood_of_wrong_keys_a_publisher_and_a_viewer_go_on() {
    let srv = Server::start("[http]\nheader_timeout_secs = 40\n");
    let _publisher = Publisher::rtmp(&srv.rtmp_url(KEY), 120);
    wait_for("the stream to be live", LONG, || {
        get(srv.http, "/live/demo/video/index.m3u8")
            .ok()
            .filter(|r| r.status == 200 && r.text().contains("#EXTINF"))
    });
    let mut half_sent = Vec::new();
    for _ in 0..5000 {
        let mut c = TcpStream::connect(("127.0.0.1", srv.http)).unwrap();
        c.write_all(b"GET /live/demo/index.m3u8 HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        half_sent.push(c);
    }
    assert_eq!(get(srv.http, "/healthz").unwrap().status, 200);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flood = Vec::new();
    for t in 0..4 {
        let (stop, port) = (stop.clone(), srv.rtmp);
        flood.push(std::thread::spawn(move || {
            let mut closed = 0;
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                closed += rtmp_publish_attempt(port, &format!("wrong-key-{t}-{n}")) as u32;
                n += 1;
            }
            (n, closed)
        }));
    }
    let (stop_whip, http) = (stop.clone(), srv.http);
    let whip = std::thread::spawn(move || {
        let mut refused = 0;
        while !stop_whip.load(std::sync::atomic::Ordering::Relaxed) {
            let r = request(
                http,
                "POST",
                "/whip",
                &[
                    ("Content-Type", "application/sdp"),
                    ("Authorization", "Bearer wrong-whip-key"),
                ],
                b"v=0\r\n",
            );
            refused += r.map_or(0, |r| (r.status == 401) as u32);
        }
        refused
    });

    // A viewer meanwhile, from a page of its own in Chromium.
    let page = serve_page();
    let lines = run_player(
        &format!(
            "http://127.0.0.1:{page}/index.html?src=http://127.0.0.1:{}/live/demo/index.m3u8",
            srv.http
        ),
        15,
    );
    let stats: Vec<&String> = lines.iter().filter(|l| l.contains("currentTime")).collect();
    let (first, last) = (stats[0], stats[stats.len() - 1]);
    eprintln!("player: {last}");
    assert!(!last.contains("\"fatal\":true"), "{last}");
    let played = field(last, "currentTime").unwrap() - field(first, "currentTime").unwrap();
    assert!(
        played > 8.0,
        "the viewer played {played:.1} s in 15 s: {lines:?}"
    );
    assert_eq!(get(srv.http, "/healthz").unwrap().status, 200);

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut attempts = 0;
    for f in flood {
        let (n, closed) = f.join().unwrap();
        assert_eq!(n, closed, "every wrong-key connection was closed");
        attempts += n;
    }
    let whip_refused = whip.join().unwrap();
    eprintln!("{attempts} RTMP and {whip_refused} WHIP publishes with wrong keys refused");
    assert!(attempts >= 4 && whip_refused >= 1);
    // Refused keys are answered slowly (one address), right ones at once.
    assert_advances(&srv, "demo");
    let log = srv.log_text();
    assert!(log.contains("unknown stream key"), "{log}");
    drop(half_sent);
}
