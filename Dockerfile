# syntax=docker/dockerfile:1
# wsgate container image: a build stage compiles TypeScript to dist/, the runtime stage holds only
# Node.js, the production dependencies and dist/, and runs as UID/GID 1000 (the image's `node`
# user, given by number so that Kubernetes' runAsNonRoot can verify it).
#
#   docker build -t wsgate .
#   docker run --rm --stop-timeout 35 -p 8080:8080 -p 8410:8410 \
#     -v "$PWD/my-config.yaml:/etc/wsgate/config.yaml:ro" wsgate
#
# `docker stop` kills after 10 s unless told otherwise: give it more than shutdown.drainTimeout
# (30 s by default) with --stop-timeout or `docker stop -t`.
#
# Addresses: inside a container the listeners and the admin server must bind 0.0.0.0 to be
# reachable (probes, Prometheus). The image sets WSGATE_LISTEN_ADDRESS and WSGATE_ADMIN_ADDRESS
# to 0.0.0.0, but they only take effect where the mounted config reads them, as
# config.example.yaml does (`address: ${WSGATE_ADMIN_ADDRESS:-127.0.0.1}`); a config that leaves
# admin.address out gets 127.0.0.1, and probes against the pod fail.
#
# The image ships no configuration of its own: without one mounted at /etc/wsgate/config.yaml the
# container exits at once with status 2 and says the file cannot be read, rather than starting
# against backends that do not exist and reporting ready while it answers 502. The commented
# example is at /usr/share/wsgate/config.example.yaml (`docker run --rm --entrypoint cat wsgate
# /usr/share/wsgate/config.example.yaml`).
#
# The process runs directly as the container's main process (no npm, no shell), so signals reach
# it: SIGTERM (docker stop, Kubernetes) fails readiness, keeps serving for shutdown.drainDelay,
# then drains (new upgrades get 503, live WebSockets get close 1001) and exits 0 within
# shutdown.drainTimeout; keep terminationGracePeriodSeconds above it (docs/kubernetes.md).

ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the `node` devDependency only provides Node 24 on developer machines; the
# image already has it. The compiler is run explicitly below with the image's node.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    WSGATE_LISTEN_ADDRESS=0.0.0.0 \
    WSGATE_ADMIN_ADDRESS=0.0.0.0
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY config.example.yaml /usr/share/wsgate/config.example.yaml
USER 1000:1000
EXPOSE 8080 8410
STOPSIGNAL SIGTERM
# The flags of src/runtime-flags.ts (V8 reads them only at start).
ENTRYPOINT ["node", "--max-semi-space-size=2", "/app/dist/cli.js"]
CMD ["--config", "/etc/wsgate/config.yaml"]
