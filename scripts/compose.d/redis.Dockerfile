FROM recstream-standin/debian:bookworm
RUN apt-get update -q && apt-get install -y -q --no-install-recommends redis-server && rm -rf /var/lib/apt/lists/*
# The official image's defaults: no protected mode, listen everywhere, data in /data.
RUN mkdir -p /data && printf '#!/bin/sh\nset -e\nif [ "${1#-}" != "$1" ]; then set -- redis-server "$@"; fi\nif [ "$1" = redis-server ]; then shift; exec redis-server --protected-mode no --bind 0.0.0.0 --dir /data "$@"; fi\nexec "$@"\n' > /usr/local/bin/docker-entrypoint.sh && chmod +x /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
