/**
 * The two sides of a tunnel and what follows from which one a stream comes from: its direction
 * (the metrics' label) and the outcome codes its limits close with (the sender's).
 */
import type { Direction } from '../observability/metrics.ts';
import type { LimitCodes } from './limits.ts';

export type Side = 'client' | 'backend';
export const SIDES = ['client', 'backend'] as const;

/** Each side's bit, where a tunnel keeps a flag per side in one number. */
export const SIDE_BIT: Readonly<Record<Side, number>> = { client: 1, backend: 2 };

export const other = (side: Side): Side => (side === 'client' ? 'backend' : 'client');

/** The direction of the stream that comes from `side`. */
export const directionFrom = (side: Side): Direction =>
  side === 'client' ? 'client_to_backend' : 'backend_to_client';

/** The codes each direction's limits close with: the sender's outcome. */
export const LIMIT_CODES: Readonly<Record<Side, LimitCodes>> = {
  client: { tooBig: 'CLIENT_MESSAGE_TOO_BIG', rateLimited: 'CLIENT_RATE_LIMITED' },
  backend: { tooBig: 'BACKEND_MESSAGE_TOO_BIG', rateLimited: 'BACKEND_RATE_LIMITED' },
};
