# wsgate with the per-client admission limits on, counted in memory (the default store): the
# baseline for wsgate-admission-redis.sh. Every limit is set high enough that the benchmark's
# handshakes, all from 127.0.0.1, are never refused: what is measured is the cost of deciding.
#
#   /path/to/shared/bench/run.sh --scenarios hs \
#     bench/shared-harness/wsgate-admission.sh bench/shared-harness/wsgate-admission-redis.sh

PROXY_DESC="${PROXY_DESC:-wsgate, per-client cap and handshake rate, memory store}"
_WSGATE_ADMISSION_DIR="$(dirname "${BASH_SOURCE[0]:-${PLUGIN:-}}")"
WSGATE_ADMISSION_YAML="admission:
  perClient:
    maxConnections: 1000000
    handshakeRate: { perSecond: 1000000, burst: 1000000 }"
WSGATE_EXTRA_YAML="${WSGATE_EXTRA_YAML:-$WSGATE_ADMISSION_YAML}"
# shellcheck source=wsgate.sh
source "$_WSGATE_ADMISSION_DIR/wsgate.sh"
