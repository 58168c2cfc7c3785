# wsgate with `workers: N` (WSGATE_WORKERS, default 2) for the shared harness, unpinned: the
# harness pins every proxy to CPU 0, which would put every worker on one core, so this plug-in
# lets the gateway's processes run on both CPUs (they then share CPU 1 with the load client and
# the echo backend: read the load side's CPU share in the report). Compare with
# wsgate-workers1.sh and nginx-workers2.sh, which are unpinned the same way.
#
#   /path/to/shared/bench/run.sh --scenarios hs,relay \
#     bench/shared-harness/wsgate-workers1.sh bench/shared-harness/wsgate-workers.sh \
#     bench/shared-harness/nginx-workers2.sh

WSGATE_WORKERS="${WSGATE_WORKERS:-2}"
PROXY_DESC="${PROXY_DESC:-wsgate, workers: $WSGATE_WORKERS, unpinned (both CPUs)}"
_WSGATE_WORKERS_DIR="$(dirname "${BASH_SOURCE[0]:-${PLUGIN:-}}")"
WSGATE_EXTRA_YAML="workers: $WSGATE_WORKERS"
# shellcheck source=wsgate.sh
source "$_WSGATE_WORKERS_DIR/wsgate.sh"

_wsgate_pinned_start="$(declare -f proxy_start)"
eval "${_wsgate_pinned_start/proxy_start/_wsgate_start_pinned}"
proxy_start() {
  # Widen this shell's CPU set before the gateway (and the workers it forks) inherit it.
  taskset -pc 0-1 $$ >/dev/null
  _wsgate_start_pinned
}
