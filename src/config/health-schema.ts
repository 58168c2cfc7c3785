/**
 * A pool's health checks: `active` probes each backend on an interval (an HTTP request whose
 * status must fall in a range, or a TCP connect), with thresholds to go down and to come back;
 * `passive` (on unless turned off) ejects a backend after consecutive failures of real traffic
 * (connects refused or timed out, upgrades answered with 5xx) for a while, never more than a share
 * of the pool at once.
 */
import { z } from 'zod';
import { duration } from './measures.ts';

const threshold = (fallback: number) => z.number().int().min(1).max(100).default(fallback);

const activeSchema = z.strictObject({
  type: z
    .enum(['http', 'tcp'])
    .default('http')
    .describe('http: a GET whose status must be in expectStatus; tcp: a connect.'),
  path: z.string().startsWith('/', 'must start with "/"').default('/').describe('Path of the HTTP check.'),
  interval: duration('5s').describe(
    'Time between two checks of a backend (each spread by up to ±10 % at random).',
  ),
  timeout: duration('2s').describe('Time a check may take (connect, status line and body) before it fails.'),
  expectStatus: z
    .strictObject({
      min: z.number().int().min(100).max(599).default(200).describe('Lowest status that passes.'),
      max: z.number().int().min(100).max(599).default(399).describe('Highest status that passes.'),
    })
    .refine((range) => range.min <= range.max, { message: 'min must not be above max', path: ['min'] })
    .prefault({})
    .describe('Statuses that pass an HTTP check.'),
  unhealthyAfter: threshold(3).describe('Consecutive failed checks that take a backend down.'),
  healthyAfter: threshold(2).describe('Consecutive passed checks that bring it back.'),
});

const passiveSchema = z.strictObject({
  enabled: z
    .boolean()
    .default(true)
    .describe('Eject backends that fail real traffic; false: never (only the active checks take one out).'),
  failures: threshold(5).describe(
    'Consecutive failures of real traffic (a connect refused or timed out, an upgrade answered 5xx) that eject a backend.',
  ),
  ejectFor: duration('30s').describe('How long an ejected backend gets no new connections.'),
  maxEjectedShare: z
    .number()
    .min(0)
    .max(1)
    .default(0.5)
    .describe('Largest share of the pool ejected at once (rounded down), so a bad deploy cannot empty it.'),
});

export const healthSchema = z
  .strictObject({
    active: activeSchema.optional().describe('Probes of each backend; absent: none.'),
    passive: passiveSchema
      .prefault({})
      .describe('Ejection of backends failing real traffic: on by default, with the defaults below.'),
  })
  .prefault({})
  .describe('Health checks: a backend that is down or ejected gets no new connections while another is up.');

export type HealthSettings = z.output<typeof healthSchema>;
export type ActiveCheck = NonNullable<HealthSettings['active']>;
export type PassiveCheck = HealthSettings['passive'];
