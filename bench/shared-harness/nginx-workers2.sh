# nginx with worker_processes 2, unpinned like wsgate-workers.sh: the multi-core reference.
PROXY_DESC="nginx, worker_processes 2, unpinned (both CPUs)"
# shellcheck source=/dev/null
source "$BENCH_DIR/proxies/nginx.sh"
PROXY_DESC="nginx, worker_processes 2, unpinned (both CPUs)"
_nginx_one_worker="$(declare -f proxy_start)"
eval "${_nginx_one_worker/proxy_start/_nginx_start_one}"
proxy_start() {
  taskset -pc 0-1 $$ >/dev/null
  # The same configuration as nginx.sh with two worker processes.
  exec() { sed -i 's/^worker_processes 1;/worker_processes 2;/' "$WORKDIR/nginx.conf"; builtin exec "$@"; }
  _nginx_start_one
}
