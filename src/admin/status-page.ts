/**
 * The `/status` page: one self-contained HTML document (no build step, no external assets) that
 * fetches `/status.json` every two seconds and draws listeners, routes and pools, each backend
 * with its state, open WebSockets, picks and failures, and with workers each worker. Every value is written as text, never as
 * markup.
 */

export const STATUS_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wsgate status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  :root { color-scheme: light dark; --up: #1a7f37; --down: #cf222e; --draining: #9a6700; --muted: #6e7781; }
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; max-width: 72rem; }
  h1 { font-size: 1.3rem; margin: 0 0 .2rem; } h2 { font-size: 1.05rem; margin: 1.6rem 0 .4rem; }
  .meta { color: var(--muted); } .totals span { margin-right: 1.5rem; font-weight: 600; }
  table { border-collapse: collapse; width: 100%; margin-bottom: .8rem; }
  th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #8884; }
  th { font-weight: 600; color: var(--muted); } .num { text-align: right; font-variant-numeric: tabular-nums; }
  .state { font-weight: 700; text-transform: uppercase; font-size: .8rem; }
  .up { color: var(--up); } .down { color: var(--down); } .draining { color: var(--draining); }
  .pool { margin-bottom: 1.2rem; } .pool h3 { font-size: .95rem; margin: .6rem 0 .2rem; }
</style></head>
<body>
<h1>wsgate</h1>
<div class="meta" id="meta">loading…</div>
<p class="totals" id="totals"></p>
<div id="fleet" hidden><h2>Workers</h2><table id="workers"><thead><tr><th>worker</th><th>pid</th><th>state</th><th class="num">WebSockets</th><th class="num">restarts</th><th>configuration</th></tr></thead><tbody></tbody></table></div>
<h2>Pools</h2><div id="pools"></div>
<h2>Routes</h2><table id="routes"><thead><tr><th>route</th><th>hosts</th><th>path</th><th>pool</th><th>token</th></tr></thead><tbody></tbody></table>
<h2>Listeners</h2><table id="listeners"><thead><tr><th>listener</th><th>address</th><th>TLS</th><th>PROXY protocol</th></tr></thead><tbody></tbody></table>
<script>
const cell = (text, className) => {
  const td = document.createElement('td');
  td.textContent = String(text);
  if (className) td.className = className;
  return td;
};
const row = (cells) => {
  const tr = document.createElement('tr');
  for (const td of cells) tr.append(td);
  return tr;
};
function render(status) {
  document.getElementById('meta').textContent =
    'version ' + status.version + ' · ' + status.phase + ' · up ' + status.uptimeSeconds + ' s · configuration ' + status.configuration.hash +
    (status.configuration.lastReload ? ' · last reload ' + status.configuration.lastReload.result + ' at ' + new Date(status.configuration.lastReload.at).toLocaleTimeString() : '') +
    (status.configuration.lastReload?.error ? ': ' + status.configuration.lastReload.error : '') +
    (status.limitStore && status.limitStore.store === 'redis' ? ' · limits in Redis: ' + (status.limitStore.up ? 'up' : 'NOT ANSWERING') + ', ' + status.limitStore.leases + ' leases' : '') +
    ' · updated ' + new Date().toLocaleTimeString();
  const totals = document.getElementById('totals');
  totals.replaceChildren();
  for (const [label, value] of [['WebSockets', status.totals.tunnels], ['handshakes', status.totals.handshakes], ['HTTP requests', status.totals.requests]]) {
    const span = document.createElement('span');
    span.textContent = value + ' ' + label;
    totals.append(span);
  }
  // A fleet (workers above 1): one row per worker; the pools below are the first worker's view.
  document.getElementById('fleet').hidden = !status.workers;
  document.querySelector('#workers tbody').replaceChildren(...(status.workers ?? []).map((worker) => row([
    cell(worker.index), cell(worker.pid ?? '—'), cell(worker.state, 'state ' + (worker.state === 'running' ? 'up' : 'down')),
    cell(worker.totals ? worker.totals.tunnels : '—', 'num'), cell(worker.restarts, 'num'), cell(worker.configuration ?? '—'),
  ])));
  const pools = document.getElementById('pools');
  pools.replaceChildren();
  for (const pool of status.pools) {
    const section = document.createElement('div');
    section.className = 'pool';
    const title = document.createElement('h3');
    const up = pool.backends.filter((backend) => backend.state === 'up').length;
    title.textContent = pool.name + ' — ' + up + '/' + pool.backends.length + ' up · ' + pool.balance + (pool.sticky.length ? ' · sticky: ' + pool.sticky.join(', ') : '');
    const table = document.createElement('table');
    table.append(row(['backend', 'state', 'weight', 'WebSockets', 'picks', 'failures', 'last failure'].map((text, i) => {
      const th = document.createElement('th');
      th.textContent = text;
      if (i >= 2 && i <= 5) th.className = 'num';
      return th;
    })));
    for (const backend of pool.backends) {
      table.append(row([
        cell(backend.entry === backend.url ? backend.url : backend.url + ' (' + backend.entry + ')'),
        cell(backend.state, 'state ' + backend.state), cell(backend.weight, 'num'),
        cell(backend.websockets, 'num'), cell(backend.picks, 'num'), cell(backend.failures, 'num'),
        cell(backend.lastFailureAt ? new Date(backend.lastFailureAt).toLocaleTimeString() : '—'),
      ]));
    }
    section.append(title, table);
    pools.append(section);
  }
  document.querySelector('#routes tbody').replaceChildren(...status.routes.map((route) => row([
    cell(route.name), cell(route.hosts.length ? route.hosts.join(', ') : 'any'), cell(route.path), cell(route.pool), cell(route.token ? 'required' : '—'),
  ])));
  document.querySelector('#listeners tbody').replaceChildren(...status.listeners.map((listener) => row([
    cell(listener.name), cell(listener.address + ':' + listener.port), cell(listener.tls ? 'yes' : 'no'), cell(listener.proxyProtocol),
  ])));
}
async function refresh() {
  try {
    const response = await fetch('/status.json', { cache: 'no-store' });
    render(await response.json());
  } catch (error) {
    document.getElementById('meta').textContent = 'cannot reach the gateway: ' + error;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body></html>
`;
