# kiln: one image for `kiln controller` and `kiln agent`.
#
#   docker build -t registry.example.com/kiln:0.1.0 .
#   kiln install --image registry.example.com/kiln:0.1.0 | kubectl apply --server-side -f -
#
# The runtime stage holds compiled JavaScript and production dependencies only
# (npm ci --omit=dev: no TypeScript, no tsx). It runs as the unprivileged `node`
# user (uid 1000) and writes nothing outside /tmp, so it runs with a read-only
# root filesystem; git mode keeps its clone under /tmp (an emptyDir in the
# install manifests). test/integration/production-build.test.ts runs exactly
# what this file assembles, without a container engine.

# ---- build: compile the TypeScript sources --------------------------------
FROM node:24-slim AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
# No install scripts: the compiler needs none (and the `node` dev dependency would download a runtime).
RUN npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
COPY tsconfig.json tsconfig.build.json ./
COPY crds/ crds/
COPY imports/ imports/
COPY kube/ kube/
COPY kinds/ kinds/
COPY install/ install/
COPY validate/ validate/
COPY lib/ lib/
COPY controller/ controller/
COPY gitops/ gitops/
COPY agent/ agent/
COPY cli/ cli/
COPY bench/ bench/
COPY test/ test/
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json

# ---- runtime ---------------------------------------------------------------
FROM node:24-slim
# git (git mode's clone, fetch and push over https or ssh) and the CA bundle it verifies servers with.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates openssh-client \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production \
    HOME=/tmp \
    TMPDIR=/tmp
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error \
 && npm cache clean --force \
 && rm -rf /root/.npm
COPY bin/kiln.js bin/kiln.js
COPY crds/*.yaml crds/
# Only what the commands load: no benchmarks, no tests, no TypeScript sources.
COPY --from=build /src/build/agent build/agent
COPY --from=build /src/build/cli build/cli
COPY --from=build /src/build/controller build/controller
COPY --from=build /src/build/crds build/crds
COPY --from=build /src/build/gitops build/gitops
COPY --from=build /src/build/imports build/imports
COPY --from=build /src/build/install build/install
COPY --from=build /src/build/kinds build/kinds
COPY --from=build /src/build/kube build/kube
COPY --from=build /src/build/lib build/lib
COPY --from=build /src/build/validate build/validate
USER 1000:1000
EXPOSE 8080 8081
ENTRYPOINT ["node", "/app/bin/kiln.js"]
CMD ["--help"]
