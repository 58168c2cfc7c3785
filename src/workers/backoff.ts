/**
 * How long to wait before restarting a worker that died: 100 ms, doubling with each death that
 * follows a short life, up to 10 s, so that a worker that crashes at once (a bug hit by every
 * request, a resource gone) is not restarted in a tight loop; a worker that had run for a minute
 * is restarted at once again.
 */
const FIRST_MS = 100;
const LONGEST_MS = 10_000;
/** A life at least this long counts as healthy: the next restart starts from FIRST_MS again. */
const STABLE_MS = 60_000;

export class RestartBackoff {
  #next = FIRST_MS;

  /** The wait before restarting a worker that lived `livedMs`. */
  delay(livedMs: number): number {
    if (livedMs >= STABLE_MS) this.#next = FIRST_MS;
    const wait = this.#next;
    this.#next = Math.min(LONGEST_MS, this.#next * 2);
    return wait;
  }
}
