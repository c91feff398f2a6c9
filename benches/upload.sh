#!/usr/bin/env bash
# Upload throughput and server CPU per GiB: Estuary taking a tus upload beside nginx taking the
# same bytes as a WebDAV PUT (its client body written to tmpfs, then moved into place), one
# request each, in alternating rounds of one run.
#
#   cargo build --release --bin estuary && benches/upload.sh [MIB]
#
# The file (MIB, 1024, of random bytes) is on /dev/shm, and so are both servers' files. Estuary:
# a direct upload URL from the API, then one tus creation-with-upload request streaming the
# whole file (curl -T; packaging off, so only the upload is measured). nginx: one worker,
# `dav_methods PUT`, `client_body_temp_path` on /dev/shm. Throughput is the file's size over
# curl's total time; CPU is the server processes' user + system time over the request (from
# /proc). Needs nginx (nginx-light), curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${ESTUARY_BIN:-${CARGO_TARGET_DIR:-target}/release/estuary}
MIB=${1:-1024}
ROUNDS=${ROUNDS:-5}
HTTP=18191; NGX=18192
TOKEN=bench-api-token-0123456789
work=$(mktemp -d /dev/shm/estuary-upload.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
head -c $((MIB << 20)) /dev/urandom > "$work/file.bin"
size=$(stat -c %s "$work/file.bin")

digest=$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)
cat > "$work/estuary.toml" <<TOML
[server]
data_dir = "$work/data"
[http]
listen = "127.0.0.1:$HTTP"
[rtmp]
listen = "127.0.0.1:0"
[srt]
listen = "127.0.0.1:0"
[whip]
enabled = false
[api]
tokens = ["sha256:$digest"]
[uploads]
max_size_mb = 65536
package = false
TOML
RUST_LOG=warn "$BIN" serve --config "$work/estuary.toml" > "$work/estuary.log" 2>&1 & pids+=($!)
estuary_pid=$!
mkdir -p "$work/www" "$work/nginx-body"
cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_max_body_size 0;
  client_body_temp_path $work/nginx-body;
  server {
    listen 127.0.0.1:$NGX;
    root $work/www;
    location / { dav_methods PUT DELETE; create_full_put_path on; }
  }
}
NGINX
nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
nginx_master=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null || { cat "$work/estuary.log" >&2; exit 1; }
sleep 0.5
nginx_pids="$nginx_master $(pgrep -P "$nginx_master" | tr '\n' ' ')"

# CPU time (user + system, clock ticks) of the given processes, threads that ended included.
cpu_ticks() {
  local p total=0
  for p in "$@"; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo $total
}
tck=$(getconf CLK_TCK)
# curl's total time for a request; the CPU seconds per GiB the server processes spent on it.
measure() {
  local before after t
  before=$(cpu_ticks $SERVER_PIDS)
  t=$(curl -sf -o /dev/null -w '%{time_total}' "$@")
  after=$(cpu_ticks $SERVER_PIDS)
  echo "$t $(echo "($after - $before) / $tck * 1073741824 / $size" | bc -l)"
}
estuary_round() {
  local id
  id=$(curl -sf -X POST -H "Authorization: Bearer $TOKEN" -d '{}' "http://127.0.0.1:$HTTP/api/v1/uploads" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  SERVER_PIDS=$estuary_pid measure -X POST -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $size" \
    -H 'Content-Type: application/offset+octet-stream' -T "$work/file.bin" "http://127.0.0.1:$HTTP/uploads/$id"
  rm -f "$work"/data/uploads/*
}
nginx_round() {
  SERVER_PIDS=$nginx_pids measure -T "$work/file.bin" "http://127.0.0.1:$NGX/file.bin"
  rm -f "$work/www/file.bin"
}

echo "file: $size bytes on /dev/shm; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
printf '%-6s %-16s %-18s %-16s %-18s\n' round "Estuary MiB/s" "Estuary CPU s/GiB" "nginx MiB/s" "nginx CPU s/GiB"
e_sum=0; n_sum=0
for r in $(seq "$ROUNDS"); do
  read -r et ec < <(estuary_round)
  read -r nt nc < <(nginx_round)
  e=$(echo "$size / 1048576 / $et" | bc -l); n=$(echo "$size / 1048576 / $nt" | bc -l)
  e_sum=$(echo "$e_sum + $e" | bc -l); n_sum=$(echo "$n_sum + $n" | bc -l)
  printf '%-6s %-16.0f %-18.2f %-16.0f %-18.2f\n' "$r" "$e" "$ec" "$n" "$nc"
done
printf 'mean: Estuary %.0f MiB/s, nginx %.0f MiB/s, ratio %.2f\n' \
  "$(echo "$e_sum / $ROUNDS" | bc -l)" "$(echo "$n_sum / $ROUNDS" | bc -l)" "$(echo "$e_sum / $n_sum" | bc -l)"
