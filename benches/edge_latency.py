# What Redis adds between the origin and an edge: hold a blocking playlist reload for each next
# part at both, note when each part is first listed at each, and report edge minus origin.
# Usage: python3 benches/edge_latency.py ORIGIN_HTTP_PORT EDGE_HTTP_PORT SECONDS
# (stream "demo" live on the origin, [redis] url set, `estuary edge` on the same Redis; see
# BENCHMARKS.md for the exact setup)
import http.client, re, sys, threading, time
def watch(port, out, stop):
    msn, part = None, None
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while not stop.is_set():
        path = "/live/demo/video/index.m3u8" + (f"?_HLS_msn={msn}&_HLS_part={part}" if msn is not None else "")
        try:
            c.request("GET", path); r = c.getresponse(); body = r.read().decode()
        except Exception:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10); time.sleep(0.01); continue
        now = time.monotonic()
        if r.status != 200: time.sleep(0.01); continue
        for m in re.finditer(r'#EXT-X-PART:[^\n]*URI="[^/]+/(\d+)\.(\d+)\.m4s"', body):
            out.setdefault((int(m.group(1)), int(m.group(2))), now)
        h = re.search(r'PRELOAD-HINT:TYPE=PART,URI="[^/]+/(\d+)\.(\d+)\.m4s"', body)
        if h: msn, part = int(h.group(1)), int(h.group(2))
o, e, stop = {}, {}, threading.Event()
ts = [threading.Thread(target=watch, args=(p, d, stop)) for p, d in ((int(sys.argv[1]), o), (int(sys.argv[2]), e))]
[t.start() for t in ts]; time.sleep(float(sys.argv[3])); stop.set(); [t.join() for t in ts]
d = sorted((e[k] - o[k]) * 1000 for k in o if k in e and k[0] > 1)
print(f"parts {len(d)}: edge - origin p50 {d[len(d)//2]:.2f} ms, p99 {d[int((len(d)-1)*0.99)]:.2f} ms, max {d[-1]:.2f} ms")
