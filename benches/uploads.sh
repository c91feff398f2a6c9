# Sourced by the upload benches (package.sh, upload.sh): an `estuary serve` taking uploads on
# loopback, and a direct upload URL from its API.
BENCH_TOKEN=bench-api-token-0123456789

# start_estuary DIR PORT [UPLOADS_TOML]: writes DIR/estuary.toml (data in DIR/data, HTTP on
# PORT (RTMP and SRT on the next two), the API token BENCH_TOKEN, UPLOADS_TOML under [uploads]), starts the server with its log
# in DIR/estuary.log (RUST_LOG from the caller, info by default) and waits for /healthz. Sets
# estuary_pid and adds it to the caller's pids.
start_estuary() {
  local dir=$1 port=$2 digest
  digest=$(printf '%s' "$BENCH_TOKEN" | sha256sum | cut -d' ' -f1)
  cat > "$dir/estuary.toml" <<TOML
[server]
data_dir = "$dir/data"
[http]
listen = "127.0.0.1:$port"
[rtmp]
listen = "127.0.0.1:$((port + 1))"
[srt]
listen = "127.0.0.1:$((port + 2))"
[whip]
enabled = false
[api]
tokens = ["sha256:$digest"]
[uploads]
${3:-}
TOML
  RUST_LOG=${RUST_LOG:-info} NO_COLOR=1 "$BIN" serve --config "$dir/estuary.toml" > "$dir/estuary.log" 2>&1 &
  estuary_pid=$!; pids+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return; sleep 0.1; done
  cat "$dir/estuary.log" >&2; exit 1
}

# direct_upload PORT: a new direct upload's id.
direct_upload() {
  curl -sf -X POST -H "Authorization: Bearer $BENCH_TOKEN" -d '{}' "http://127.0.0.1:$1/api/v1/uploads" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

# tus_put PORT ID FILE [CURL_ARGS...]: the whole file in one tus creation-with-upload request.
tus_put() {
  local port=$1 id=$2 file=$3; shift 3
  curl -sf -o /dev/null -X POST -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $(stat -c %s "$file")" \
    -H 'Content-Type: application/offset+octet-stream' -T "$file" "$@" "http://127.0.0.1:$port/uploads/$id"
}
