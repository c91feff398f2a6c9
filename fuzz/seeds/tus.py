#!/usr/bin/env python3
"""Seeds for the `tus` fuzz target into DIR (default corpus/tus): tus-js-client's flows (a
creation, then PATCHes; creation-with-upload; a deferred length; checksums; termination; a
POST naming its method) and large ones (a 1 MB body over the target's 64 KiB limit, 2,000
metadata pairs)."""
import base64, hashlib, os, sys

out = sys.argv[1] if len(sys.argv) > 1 else "corpus/tus"
os.makedirs(out, exist_ok=True)

def req(method, headers, body=b""):
    head = method + "\n" + "".join(f"{k}: {v}\n" for k, v in headers.items())
    return head.encode() + b"\n" + body

def flow(*reqs):
    return b"\n--\n".join(reqs)

T = {"Tus-Resumable": "1.0.0"}
O = {**T, "Content-Type": "application/offset+octet-stream"}
data = bytes(range(256)) * 40  # 10,240 bytes
meta = "filename " + base64.b64encode(b"clip.mp4").decode() + ",filetype " + base64.b64encode(b"video/mp4").decode()
sha1 = base64.b64encode(hashlib.sha1(data[:4096]).digest()).decode()

seeds = {
    "create-then-patch": flow(
        req("POST", {**T, "Upload-Length": str(len(data)), "Upload-Metadata": meta}),
        req("PATCH", {**O, "Upload-Offset": "0"}, data[:4096]),
        req("HEAD", T),
        req("PATCH", {**O, "Upload-Offset": "4096"}, data[4096:]),
    ),
    "creation-with-upload": req("POST", {**O, "Upload-Length": str(len(data))}, data),
    "deferred": flow(
        req("POST", {**T, "Upload-Defer-Length": "1"}),
        req("PATCH", {**O, "Upload-Offset": "0"}, data[:100]),
        req("PATCH", {**O, "Upload-Offset": "100", "Upload-Length": "300"}, data[100:300]),
    ),
    "checksum": flow(
        req("POST", {**T, "Upload-Length": str(len(data))}),
        req("PATCH", {**O, "Upload-Offset": "0", "Upload-Checksum": "sha1 " + sha1}, data[:4096]),
        req("PATCH", {**O, "Upload-Offset": "4096", "Upload-Checksum": "sha1 " + sha1}, data[4096:8192]),
    ),
    "terminate": flow(
        req("POST", {**T, "Upload-Length": "10"}),
        req("POST", {**O, "X-HTTP-Method-Override": "PATCH", "Upload-Offset": "0"}, b"12345"),
        req("DELETE", T),
        req("HEAD", T),
    ),
    "large-body": flow(
        req("POST", {**T, "Upload-Length": "2000000"}),
        req("PATCH", {**O, "Upload-Offset": "0"}, b"\x47" * 1_000_000),
    ),
    "large-metadata": req("POST", {**T, "Upload-Length": "10", "Upload-Metadata": ",".join(
        f"k{i} " + base64.b64encode(b"v" * 300).decode() for i in range(2000))}),
}
for name, body in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(body)
print(f"{len(seeds)} seeds in {out}")
