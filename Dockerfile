# cacheside: build with `docker build -t cacheside .`, or run the whole stack with docker-compose.yml.
#
# Stages: deps (every dependency, cached on the lockfile and the patches) → build (tsc) → prod-deps
# (runtime dependencies only) → runtime (no compiler, no dev tools, not root).
#
# The project's `prepare` (the build) cannot run before the sources are here, so deps installs with
# scripts off and then `npm rebuild`s: the dependencies' install scripts and our `postinstall`, which
# applies the pinned postgres.js patch (docs/operations.md, "Dependency patches"). prod-deps has no
# patch-package (a dev dependency) and no script it needs (msgpackr-extract finds its prebuilt
# binary without one): it installs with scripts off and takes the patched postgres.js from deps.

ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci --ignore-scripts --no-audit --no-fund && npm rebuild

FROM deps AS build
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=deps /app/node_modules/postgres ./node_modules/postgres

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# package.json is needed at runtime too: its "type": "module" makes dist/*.js ES modules.
COPY package.json ./
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# Read at runtime relative to the package root: the migrations and the GraphQL SDL.
COPY drizzle ./drizzle
COPY schema ./schema
# Without DATABASE_URL the server keeps an embedded PGlite in DATA_DIR (default .data, i.e.
# /app/.data): it must be writable by the unprivileged user. Mount a volume there to keep it.
RUN mkdir -p /app/.data && chown node:node /app/.data
USER node
EXPOSE 4000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||4000)+'/health',{signal:AbortSignal.timeout(2000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Exec form, node directly: SIGTERM reaches the server's graceful close (through npm it may not).
CMD ["node", "dist/server.js"]
