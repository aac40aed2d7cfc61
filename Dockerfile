# inferd as a SageMaker "bring your own container" image: `docker run IMAGE serve`.
# CUDA 13 runtime + cuDNN 9, so the CUDA execution provider loads on GPU instances; the same
# image serves on CPU instances (the provider falls back to CPU unless INFERD_REQUIRE_GPU=true).
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
# Only tsc runs here: no native addon needs building.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY src src
RUN npx tsc -p tsconfig.json

FROM nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04

ARG NODE_MAJOR=20
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl gnupg \
 && curl -fsSL https://deb.nodesource.com/setup_${NODE_MAJOR}.x | bash - \
 && apt-get install -y --no-install-recommends nodejs \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/inferd
COPY package.json package-lock.json ./
# onnxruntime-node's postinstall would fetch the CUDA 12 provider from NuGet; npm 11's
# allowScripts (package.json) skips it, and this says the same to npm 10, which ignores that.
ENV ONNXRUNTIME_NODE_INSTALL=skip
# better-sqlite3 (the embedded async queue) is a native addon: its prebuilt binary is fetched when
# the build has network, else compiled, so the compiler is there for the install and then removed.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && npm ci --omit=dev --no-audit --no-fund \
 && apt-get purge -y python3 make g++ && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/* /root/.cache
# The CUDA 13 build of onnxruntime-node 1.29.0's CUDA provider, from the npm registry.
COPY scripts/install-cuda-provider.sh scripts/
RUN bash scripts/install-cuda-provider.sh
COPY --from=build /src/dist/src dist/src
COPY models models

LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true
# SageMaker may host it as a multi-model endpoint; it then sets SAGEMAKER_MULTI_MODEL=true.
LABEL com.amazonaws.sagemaker.capabilities.multi-models=true
ENV NODE_ENV=production
EXPOSE 8080
# SageMaker runs the image as root with the single argument `serve`; node is PID 1 and handles
# SIGTERM itself (no tini: the `serve` argument confuses it).
ENTRYPOINT ["node", "dist/src/main.js"]
