# syntax=docker/dockerfile:1
# Two images from one build:
#   docker build --target operator -t ghcr.io/btx-ai/btx-operator:0.1.0 .
#   docker build --target trainer  -t ghcr.io/btx-ai/btx-trainer:0.1.0 .
# test/ship/dockerfile.test.ts checks what can be checked without building (stages, users, sources, pins).

# Node.js 26 is the active LTS line; the same pinned binary runs the operator and, copied, the trainer.
ARG NODE_IMAGE=node:26.3.0-trixie-slim
# @tensorflow/tfjs-node-gpu 4.22 loads libtensorflow 2.9.1, built for CUDA 11.2 and cuDNN 8.1. CUDA 11.8 keeps
# the 11.x sonames (minor-version compatibility) and the image's cuDNN 8.9 satisfies >= 8.1; it also runs on
# newer drivers, and it is the last 11.x line with cuDNN 8 images.
ARG CUDA_IMAGE=nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04

# ---- build: compile the TypeScript sources to dist/ -------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
# The compiler needs only devDependencies; no dependency's install script is needed to compile.
RUN npm ci --omit=optional --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- operator-deps: production dependencies, no TensorFlow native bindings --------------------------------
FROM ${NODE_IMAGE} AS operator-deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund \
    && npm cache clean --force

# ---- operator: `btx operator` ----------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS operator
ENV NODE_ENV=production
WORKDIR /app
COPY --from=operator-deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY bin ./bin
# The node image's unprivileged user, by number so that runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 8080
ENTRYPOINT ["node", "bin/btx.js"]
CMD ["operator"]

# ---- trainer-deps: production dependencies plus @tensorflow/tfjs-node-gpu and its libtensorflow ----------
FROM ${NODE_IMAGE} AS trainer-deps
# Only for node-pre-gyp's fallback (compiling the binding when no prebuilt one matches); this stage's tools
# never reach the trainer image, which copies node_modules alone.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# Install without running any script, drop the CPU binding (the GPU one is preferred and it would download a
# second libtensorflow), then run the one install script we need. npm 11's allowScripts policy blocks
# dependency install scripts unless allowed, so allow exactly this package (by name: the lockfile carries no
# resolved URLs to pin a version against); older npm ignores the key and runs the script anyway.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
    && rm -rf node_modules/@tensorflow/tfjs-node \
    && echo 'allow-scripts=@tensorflow/tfjs-node-gpu' >> .npmrc \
    && npm rebuild @tensorflow/tfjs-node-gpu --foreground-scripts \
    && ls node_modules/@tensorflow/tfjs-node-gpu/lib/napi-v*/tfjs_binding.node \
    && ls node_modules/@tensorflow/tfjs-node-gpu/deps/lib/libtensorflow.so* \
    && npm cache clean --force

# ---- the Node.js runtime, by name, to copy into the CUDA image ------------------------------------------
FROM ${NODE_IMAGE} AS node-runtime

# ---- trainer: `btx train <stage>`, `btx mix`, `btx eval` on NVIDIA GPUs ---------------------------------
FROM ${CUDA_IMAGE} AS trainer
ENV NODE_ENV=production \
    HOME=/tmp \
    TF_CPP_MIN_LOG_LEVEL=1
COPY --from=node-runtime /usr/local/bin/node /usr/local/bin/node
RUN groupadd --gid 1000 btx \
    && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin btx \
    && node --version
WORKDIR /app
COPY --from=trainer-deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY bin ./bin
USER 1000:1000
ENTRYPOINT ["node", "bin/btx.js"]
CMD ["--help"]
