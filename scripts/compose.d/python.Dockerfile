FROM recstream-standin/debian:bookworm
RUN apt-get update -q && apt-get install -y -q --no-install-recommends python3 python3-venv ca-certificates && rm -rf /var/lib/apt/lists/*
# Stand-in for python:3.11-slim: python and pip on PATH from a venv; this machine's CA bundle,
# so that pip reaches PyPI through the host's HTTPS proxy.
COPY host-ca.crt /etc/ssl/certs/host-ca.crt
ENV PATH=/opt/python/bin:$PATH PIP_CERT=/etc/ssl/certs/host-ca.crt SSL_CERT_FILE=/etc/ssl/certs/host-ca.crt
RUN python3 -m venv /opt/python
CMD ["python3"]
