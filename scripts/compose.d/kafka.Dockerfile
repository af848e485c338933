FROM recstream-standin/debian:bookworm
RUN apt-get update -q && apt-get install -y -q --no-install-recommends openjdk-17-jre-headless && rm -rf /var/lib/apt/lists/*
COPY libs /opt/kafka/libs
COPY bin /opt/kafka/bin
COPY log4j2.xml /opt/kafka/config/log4j2.xml
RUN mkdir -p /var/lib/kafka/data
EXPOSE 9092
CMD ["/opt/kafka/bin/run.sh"]
