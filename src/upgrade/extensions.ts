/**
 * What the extensions a backend accepted in its 101 (Sec-WebSocket-Extensions) mean for the
 * tunnel's scanners: the RSV bits data frames may carry, and permessage-deflate's context takeover.
 */
import type { DeflateParameters } from '../tunnel/tunnel.ts';

/** RSV bits that the extensions a backend accepted allow on data frames (RFC 7692 §6 for RSV1). */
export function allowedRsvBits(extensions: string | undefined): number {
  if (!extensions?.trim()) return 0;
  const names = extensions.split(',').map((ext) => ext.split(';')[0]?.trim().toLowerCase());
  // Unknown extensions may use any reserved bit; only permessage-deflate alone is pinned to RSV1.
  return names.every((name) => name === 'permessage-deflate') ? 0x40 : 0x70;
}

/**
 * The context takeover each sender keeps, when the backend accepted permessage-deflate (RFC 7692
 * §7.1.1): the parameters of the extension the backend answered with.
 */
export function deflateParameters(extensions: string | undefined): DeflateParameters | undefined {
  const offer = extensions
    ?.split(',')
    .map((ext) => ext.split(';').map((part) => part.trim().toLowerCase()))
    .find((parts) => parts[0] === 'permessage-deflate');
  if (offer === undefined) return undefined;
  const names = new Set(offer.slice(1).map((parameter) => parameter.split('=')[0]?.trim()));
  return {
    clientNoContextTakeover: names.has('client_no_context_takeover'),
    serverNoContextTakeover: names.has('server_no_context_takeover'),
  };
}
