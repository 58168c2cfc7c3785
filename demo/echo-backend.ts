/**
 * A small demo backend: a WebSocket echo server that answers every message with
 * `[name] message`, and for plain HTTP a one-page client that opens a WebSocket back through
 * whatever address served the page (so, through the gateway).
 */
import { createServer, type Server } from 'node:http';
import { WebSocketServer } from 'ws';

const PAGE = (name: string): string => `<!doctype html>
<meta charset="utf-8"><title>wsgate demo</title>
<style>body{font:16px system-ui;margin:2rem;max-width:40rem}#log{white-space:pre-wrap;background:#f4f4f4;padding:1rem}</style>
<h1>wsgate demo</h1>
<p>This page was served over plain HTTP by backend <b>${name}</b> through the gateway. The WebSocket below goes through the gateway too.</p>
<form id="f"><input id="m" value="hello" autofocus> <button>send</button></form>
<div id="log"></div>
<script>
const log = (t) => { document.getElementById('log').textContent += t + '\\n'; };
const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/echo');
ws.onopen = () => log('open');
ws.onmessage = (e) => log('< ' + e.data);
ws.onclose = (e) => log('closed ' + e.code + ' ' + e.reason);
document.getElementById('f').onsubmit = (e) => { e.preventDefault(); const m = document.getElementById('m').value; ws.send(m); log('> ' + m); };
</script>
`;

/** Starts a named echo backend on 127.0.0.1:port; resolves once it listens. */
export function startDemoBackend(name: string, port: number): Promise<Server> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(PAGE(name));
  });
  const wss = new WebSocketServer({ server });
  // The server's own errors (a port in use) reach the caller through `listen` below; ws repeats
  // them on the WebSocketServer, where they must not be unhandled.
  wss.on('error', () => {});
  wss.on('connection', (socket) => {
    socket.on('error', () => {});
    socket.on('message', (data, isBinary) => {
      socket.send(isBinary ? data : `[${name}] ${data.toString()}`, { binary: isBinary });
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}
