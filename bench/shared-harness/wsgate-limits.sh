# wsgate with every WebSocket limit on, both directions, none hit (sizes, message
# and byte token buckets, idle timeout, keepalive pings to both sides, lifetime):
# what the limits cost per message next to wsgate.sh, nginx and HAProxy.
#
#   /path/to/shared/bench/run.sh /path/to/wsgate/bench/shared-harness/wsgate.sh \
#     /path/to/wsgate/bench/shared-harness/wsgate-limits.sh nginx haproxy

PROXY_DESC="wsgate (TypeScript) on node 24, every limit on"
_WSGATE_LIMITS_DIR="$(dirname "${BASH_SOURCE[0]:-${PLUGIN:-}}")"
WSGATE_EXTRA_YAML="$(cat "$_WSGATE_LIMITS_DIR/../limits-on.yaml")"
# shellcheck source=wsgate.sh
source "$_WSGATE_LIMITS_DIR/wsgate.sh"
