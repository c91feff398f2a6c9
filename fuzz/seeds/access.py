#!/usr/bin/env python3
"""Seeds for the `access` fuzz target, small and about 1 MB each, into DIR (default corpus/access):
a valid HS256 token (as ?token= and as a Bearer header), X-Forwarded-* headers, a media
playlist, an API body. The first byte of each is the target's mode."""
import base64, hashlib, hmac, json, os, sys, time

out = sys.argv[1] if len(sys.argv) > 1 else "corpus/access"
os.makedirs(out, exist_ok=True)
secret = b"a-fuzz-secret-that-is-at-least-32-bytes"  # the target's key

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")

def token(sub):
    h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    p = b64(json.dumps({"sub": sub, "aud": "live", "exp": int(time.time()) + 10**8}).encode())
    return h + b"." + p + b"." + b64(hmac.new(secret, h + b"." + p, hashlib.sha256).digest())

def playlist(parts):
    return b"#EXTM3U\n#EXT-X-MAP:URI=\"abc/init.mp4\"\n" + b"".join(
        b'#EXT-X-PART:DURATION=0.33333,URI="abc/%d.%d.m4s"\n' % (i // 6, i % 6) for i in range(parts)
    ) + b'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="abc/9.0.m4s"\n#EXT-X-RENDITION-REPORT:URI="../audio/index.m3u8",LAST-MSN=7\n'

seeds = {
    "token": b"\x00" + token("demo"),
    "bearer": b"\x00Bearer " + token("demo"),
    "xff": b"\x016.6.6.6, 203.0.113.9, 10.1.2.3\ncdn.example.com\nhttps",
    "playlist": b"\x02" + playlist(12),
    "api": b'\x03{"name": "show", "playback": "signed"}',
    "large-token": b"\x00" + token("d" * 700000),
    "large-xff": b"\x01" + b", ".join(b"10.0.%d.%d" % (i // 250, i % 250) for i in range(80000))[:1000000],
    "large-playlist": b"\x02" + playlist(18000),
    "large-api": b'\x03{"name": "' + b"x" * 999000 + b'"}',
}
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
