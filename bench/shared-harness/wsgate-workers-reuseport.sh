# wsgate with `workers: 2` and `listenerSharing: reusePort`, unpinned like wsgate-workers.sh: each
# worker accepts on its own SO_REUSEPORT socket, so a handshake makes no hop through the
# supervisor. Compare with wsgate-workers.sh (the supervisor's round robin) and wsgate-workers1.sh.
WSGATE_WORKERS=2
PROXY_DESC="wsgate, workers: 2, listenerSharing: reusePort, unpinned (both CPUs)"
# shellcheck source=wsgate-workers.sh
source "$(dirname "${BASH_SOURCE[0]:-${PLUGIN:-}}")/wsgate-workers.sh"
WSGATE_EXTRA_YAML="workers: 2
listenerSharing: reusePort"
