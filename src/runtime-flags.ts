/**
 * The flags Node.js is started with to run the gateway, by every launcher (the image's
 * entrypoint, the npm scripts, the demo, the benchmarks); V8 reads them only at start, so the
 * gateway cannot set them itself. The young generation is capped at 2 MiB per semi-space: Node's
 * default (32 MiB on 64-bit) lets a storm of handshakes grow it to 64 MiB, which V8 then keeps,
 * and that is more than half of what an idle connection appeared to cost (see bench/README.md).
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];
