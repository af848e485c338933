# recstream worker image (CPU only).
FROM python:3.11-slim

# Pass e.g. --build-arg PIP_EXTRA_ARGS="--index-url <a CPU-only torch index>" for a smaller image;
# the default installs torch from PyPI.
ARG PIP_EXTRA_ARGS=""
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY recstream ./recstream
COPY streams ./streams
COPY model ./model
COPY index ./index
COPY scripts ./scripts
RUN pip install ${PIP_EXTRA_ARGS} torch && pip install '.[train]'

RUN useradd --create-home recstream && mkdir -p /artifacts && chown recstream /artifacts
USER recstream
EXPOSE 6066
CMD ["recstream", "worker"]
