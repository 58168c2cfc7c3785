# syntax=docker/dockerfile:1
# wsgate container image: a build stage compiles TypeScript to dist/, the runtime stage holds only
# Node.js, the production dependencies and dist/, and runs as the unprivileged `node` user.
#
#   docker build -t wsgate .
#   docker run --rm -p 8080:8080 -v "$PWD/my-config.yaml:/etc/wsgate/config.yaml:ro" wsgate
#
# SIGTERM (docker stop, Kubernetes) drains: new upgrades get 503, live WebSockets get close 1001,
# and the process exits 0 within shutdown.drainTimeout (keep terminationGracePeriodSeconds above it).

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
COPY config.example.yaml /etc/wsgate/config.yaml
USER node
EXPOSE 8080 9090
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["--config", "/etc/wsgate/config.yaml"]
