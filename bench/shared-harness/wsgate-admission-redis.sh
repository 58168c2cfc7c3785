# wsgate-admission.sh with the limits counted in Redis (`admission.store: { redis }`): one
# atomic script per handshake (a lease added) and one ZREM when it closes. The redis-server runs
# on CPU 1 (beside the load client, as a Redis on another machine would not cost the gateway's
# core) and outside the gateway's process tree, so the proxy CPU figures are the gateway's alone;
# it is in the gateway's process group, so the harness's stop ends it too.
#
#   /path/to/shared/bench/run.sh --scenarios hs \
#     bench/shared-harness/wsgate-admission.sh bench/shared-harness/wsgate-admission-redis.sh

PROXY_DESC="wsgate, per-client cap and handshake rate, Redis store (local redis-server on CPU 1)"
_WSGATE_REDIS_DIR="$(dirname "${BASH_SOURCE[0]:-${PLUGIN:-}}")"
# shellcheck source=wsgate-admission.sh
source "$_WSGATE_REDIS_DIR/wsgate-admission.sh"

_wsgate_admission_setup="$(declare -f proxy_setup)"
eval "${_wsgate_admission_setup/proxy_setup/_wsgate_setup_plain}"
proxy_setup() {
  command -v redis-server >/dev/null 2>&1 || { echo "redis-server missing (apt-get install redis-server)"; return 1; }
  _wsgate_setup_plain
}

_wsgate_admission_start="$(declare -f proxy_start)"
eval "${_wsgate_admission_start/proxy_start/_wsgate_start_plain}"
proxy_start() {
  # Another port of the harness's range (20000-29999), away from the ones it hands out.
  local redis_port=$(( (PORT + 4999) % 10000 + 20000 ))
  # A subshell that exits at once: redis-server is nobody's child here, so it is not counted as
  # the gateway's CPU.
  (taskset -c 1 redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
    --dir "$WORKDIR" >"$WORKDIR/redis.log" 2>&1 &)
  for _ in $(seq 50); do
    grep -q 'Ready to accept connections' "$WORKDIR/redis.log" 2>/dev/null && break
    sleep 0.1
  done
  WSGATE_EXTRA_YAML="$WSGATE_ADMISSION_YAML
  store:
    redis: { url: \"redis://127.0.0.1:$redis_port\" }"
  _wsgate_start_plain
}
