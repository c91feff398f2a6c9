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
ROUNDS=${ROUNDS:-15}
HTTP=18191; NGX=18194
work=$(mktemp -d /dev/shm/estuary-upload.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
head -c $((MIB << 20)) /dev/urandom > "$work/file.bin"
size=$(stat -c %s "$work/file.bin")

. benches/uploads.sh
RUST_LOG=warn start_estuary "$work" "$HTTP" "$(printf 'max_size_mb = 65536\npackage = false')"
mkdir -p "$work/www" "$work/nginx-body"
cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
# (Workers as root, as the server runs: they write the files into this root-owned directory.)
user root;
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
# measure CMD...: runs CMD (a curl that prints its total time); prints that time and the CPU
# seconds per GiB the server processes (SERVER_PIDS) spent meanwhile.
measure() {
  local before after t
  before=$(cpu_ticks $SERVER_PIDS)
  t=$("$@")
  after=$(cpu_ticks $SERVER_PIDS)
  echo "$t $(echo "($after - $before) / $tck * 1073741824 / $size" | bc -l)"
}
estuary_round() {
  local id
  id=$(direct_upload "$HTTP")
  SERVER_PIDS=$estuary_pid measure tus_put "$HTTP" "$id" "$work/file.bin" -w '%{time_total}'
  rm -f "$work"/data/uploads/*
}
nginx_round() {
  SERVER_PIDS=$nginx_pids measure curl -sf -o /dev/null -w '%{time_total}' -T "$work/file.bin" "http://127.0.0.1:$NGX/file.bin"
  rm -f "$work/www/file.bin"
}

echo "file: $size bytes on /dev/shm; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
printf '%-6s %-16s %-18s %-16s %-18s\n' round "Estuary MiB/s" "Estuary CPU s/GiB" "nginx MiB/s" "nginx CPU s/GiB"
# One round each first, not counted: the first gigabyte written into tmpfs after it was freed
# costs several times the next (the kernel's page copies, 72% of the server's samples in perf,
# on this VM), whichever server writes it.
estuary_round > /dev/null; nginx_round > /dev/null
: > "$work/rounds"
for r in $(seq "$ROUNDS"); do
  read -r et ec < <(estuary_round)
  read -r nt nc < <(nginx_round)
  e=$(echo "$size / 1048576 / $et" | bc -l); n=$(echo "$size / 1048576 / $nt" | bc -l)
  echo "$e $ec $n $nc" >> "$work/rounds"
  printf '%-6s %-16.0f %-18.2f %-16.0f %-18.2f\n' "$r" "$e" "$ec" "$n" "$nc"
done
# Medians: on this VM the kernel's copy into tmpfs swings by 4x from one round to the next,
# whichever server writes.
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
em=$(cut -d' ' -f1 "$work/rounds" | median); ecm=$(cut -d' ' -f2 "$work/rounds" | median)
nm=$(cut -d' ' -f3 "$work/rounds" | median); ncm=$(cut -d' ' -f4 "$work/rounds" | median)
printf 'median: Estuary %.0f MiB/s, %.2f CPU s/GiB; nginx %.0f MiB/s, %.2f CPU s/GiB; throughput ratio %.2f\n' \
  "$em" "$ecm" "$nm" "$ncm" "$(echo "$em / $nm" | bc -l)"
