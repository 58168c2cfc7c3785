# wsgate plug-in for the shared WebSocket proxy benchmark harness (bench/run.sh
# of the shared harness, "Adding a proxy"): runs this repository's gateway,
# src/cli.ts on the project's Node 24 (node_modules/.bin/node), with a
# generated YAML config that routes every path to the harness's echo backend.
#
#   /path/to/shared/bench/run.sh --quick /path/to/wsgate/bench/shared-harness/wsgate.sh
#   /path/to/shared/bench/run.sh /path/to/wsgate/bench/shared-harness/wsgate.sh nginx haproxy
#
# Set GATEWAY_DIR to benchmark another checkout; by default it is the
# repository this file lives in. The gateway runs with its shipped defaults
# (16 MiB client message limit, keepalive pings every 30 s); wsgate-limits.sh
# runs it with every WebSocket limit on.

PROXY_DESC="${PROXY_DESC:-wsgate (TypeScript) on node 24, default limits}"
_WSGATE_PLUGIN_FILE="${BASH_SOURCE[0]:-${PLUGIN:-}}"
GATEWAY_DIR="${GATEWAY_DIR:-$(cd "$(dirname "$_WSGATE_PLUGIN_FILE")/../.." && pwd)}"
WSGATE_NODE="$GATEWAY_DIR/node_modules/.bin/node"

# Once per run, before anything is timed.
proxy_setup() {
  if [ ! -x "$WSGATE_NODE" ]; then
    echo "$WSGATE_NODE missing: run 'npm install' in $GATEWAY_DIR"
    return 1
  fi
  if [ ! -f "$GATEWAY_DIR/src/cli.ts" ]; then
    echo "$GATEWAY_DIR/src/cli.ts missing"
    return 1
  fi
  "$WSGATE_NODE" --version >/dev/null
}

# One line for the report: package version, git revision if any, node version.
proxy_version() {
  local version revision
  version="$("$WSGATE_NODE" -p 'require(process.argv[1]).version' "$GATEWAY_DIR/package.json" 2>/dev/null || echo '?')"
  revision="$(git -C "$GATEWAY_DIR" rev-parse --short HEAD 2>/dev/null || true)"
  echo "wsgate $version${revision:+ ($revision)} node $("$WSGATE_NODE" --version 2>/dev/null || echo '?')"
}

# Stays in the foreground; exec keeps the PID the gateway's own.
proxy_start() {
  cat > "$WORKDIR/wsgate.yaml" <<YAML
log: { level: warn }
admin: { enabled: false }
listeners:
  bench: { address: 127.0.0.1, port: $PORT }
routes:
  echo: { path: /, pool: echo }
pools:
  echo:
    backends: [ "http://$BACKEND_HOST:$BACKEND_PORT" ]
${WSGATE_EXTRA_YAML:-}
YAML
  export NODE_ENV=production
  # The flags of src/runtime-flags.ts, as the image starts the gateway.
  exec "$WSGATE_NODE" --max-semi-space-size=2 "$GATEWAY_DIR/src/cli.ts" --config "$WORKDIR/wsgate.yaml"
}
