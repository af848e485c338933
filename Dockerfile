# recstream images (CPU only). Two targets:
#   worker  — serves published versions with ONNX Runtime; no torch (docker build --target worker)
#   trainer — everything: training, retraining, evaluation, the simulator (the default target)
FROM python:3.11-slim AS base
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY recstream ./recstream
COPY streams ./streams
COPY model ./model
COPY index ./index
# The dashboard's chart library from the npm registry, checked against npm's lock file.
COPY dashboard/package-lock.json ./dashboard/
COPY scripts/fetch-chart-lib ./scripts/
RUN python scripts/fetch-chart-lib
RUN useradd --create-home recstream && mkdir -p /artifacts && chown recstream /artifacts
EXPOSE 6066

FROM base AS worker
RUN pip install .
USER recstream
CMD ["recstream", "worker"]

FROM base AS trainer
# Pass e.g. --build-arg PIP_EXTRA_ARGS="--index-url <a CPU-only torch index>" for a smaller
# image; the default installs torch from PyPI.
ARG PIP_EXTRA_ARGS=""
RUN pip install ${PIP_EXTRA_ARGS} torch && pip install '.[train]'
USER recstream
CMD ["recstream", "worker"]
