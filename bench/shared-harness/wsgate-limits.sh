# wsgate with every WebSocket limit on, both directions, none hit (sizes, message
# and byte token buckets, idle timeout, keepalive pings to both sides, lifetime):
# what the limits cost per message next to wsgate.sh, nginx and HAProxy.
#
#   /path/to/shared/bench/run.sh /path/to/wsgate/bench/shared-harness/wsgate.sh \
#     /path/to/wsgate/bench/shared-harness/wsgate-limits.sh nginx haproxy

PROXY_DESC="wsgate (TypeScript) on node 24, every limit on"
_WSGATE_LIMITS_DIR="$(dirname "${BASH_SOURCE[0]:-${PLUGIN:-}}")"
# The harness's idle client takes any frame but its echo for a failure, so the keepalive pings
# come at the shipped 30 s here (never within its idle test) rather than limits-on.yaml's 2 s.
WSGATE_EXTRA_YAML="$(sed 's/keepalive: { client: 2s, backend: 2s,/keepalive: { client: 30s, backend: 30s,/' "$_WSGATE_LIMITS_DIR/../limits-on.yaml")"
# shellcheck source=wsgate.sh
source "$_WSGATE_LIMITS_DIR/wsgate.sh"
