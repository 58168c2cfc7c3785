# wsgate with `workers: 1`, unpinned like wsgate-workers.sh (the baseline for its ratio).
WSGATE_WORKERS=1
PROXY_DESC="wsgate, workers: 1, unpinned (both CPUs)"
# shellcheck source=wsgate-workers.sh
source "$(dirname "${BASH_SOURCE[0]:-${PLUGIN:-}}")/wsgate-workers.sh"
