/**
 * What the gateway reads of a client's request head, whichever parser read it: Node's
 * `IncomingMessage` has this shape, and so has the head of an upgrade read on the raw socket
 * (src/listener/upgrade-head.ts). `headers` has lower-cased names and Node's rules for repeated
 * ones; `rawHeaders` is names and values in order, as sent.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';

export interface IncomingHead {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly httpVersion: string;
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
  /** The connection the request came on (the TLS socket on a TLS listener). */
  readonly socket: Socket;
}
