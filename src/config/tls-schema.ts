/**
 * What a listener's `tls` block and its edge options may hold: the default certificate and key,
 * the certificates chosen by the client's server name (SNI), the protocol floor, the cipher list,
 * how often the certificate files are checked for changes; and the PROXY protocol a load balancer
 * may put in front of each connection. Whether a pair matches, and which names a certificate
 * answers to, is checked by listener-semantics.ts with the listener's own code.
 */
import { z } from 'zod';
import { SNI_NAME } from '../protocol/sni.ts';
import { duration } from './measures.ts';
import { pemFile } from './pem-file.ts';
import type { SchemaContext } from './schema-context.ts';

const sniName = z
  .string()
  .toLowerCase()
  .regex(SNI_NAME, 'must be a host name like "chat.example.com" or a wildcard like "*.example.com"');

function certificateEntrySchema(context: SchemaContext) {
  return z.strictObject({
    names: z
      .array(sniName)
      .min(1, 'list at least one name, or leave names out')
      .optional()
      .describe(
        'Server names (SNI) this certificate is chosen for: exact, or "*.example.com" for one label; absent: the DNS names of the certificate (subjectAltName, else CN).',
      ),
    cert: pemFile(context).describe('PEM certificate chain file (relative to the config file).'),
    key: pemFile(context).describe('PEM private key file.'),
  });
}

export function listenerTlsSchema(context: SchemaContext) {
  return z.strictObject({
    cert: pemFile(context).describe(
      'PEM certificate chain file (relative to the config file): the default certificate, served when no entry of `certificates` matches the server name (or none is sent).',
    ),
    key: pemFile(context).describe('PEM private key file.'),
    certificates: z
      .array(certificateEntrySchema(context))
      .default([])
      .describe(
        'More certificates, chosen by the server name the client sends (SNI): exact names first, then wildcards.',
      ),
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2').describe('Lowest TLS version accepted.'),
    ciphers: z
      .string()
      .min(1)
      .optional()
      .describe(
        "OpenSSL cipher list (TLS 1.3 suites included, e.g. TLS_AES_128_GCM_SHA256); absent: Node.js's default list.",
      ),
    reloadCheckInterval: duration('10s').describe(
      'Longest time before a change of the certificate and key files is noticed (they are also watched, which is usually immediate); a changed pair is served to new connections, live ones keep theirs.',
    ),
  });
}

export const proxyProtocolSchema = z
  .enum(['off', 'v1', 'v2', 'any'])
  .default('off')
  .describe(
    'PROXY protocol header expected first on every connection (from a layer-4 load balancer): v1, v2 or any (either); off: none. Connections without a valid header are closed.',
  );

export const proxyProtocolPeersSchema = z
  .array(z.string())
  .default([])
  .describe(
    'Addresses or CIDR ranges that may connect when proxyProtocol is on (the load balancers); others are closed. Empty: every peer may connect.',
  );
