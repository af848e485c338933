#!/bin/sh
# The official image's contract: every KAFKA_FOO_BAR variable becomes foo.bar in
# server.properties; the log dir is formatted once; then the broker runs in the foreground.
set -e
props=/opt/kafka/config/server.properties
: > "$props"
env | grep '^KAFKA_' | grep -v '^KAFKA_HEAP_OPTS=' | while IFS='=' read -r name value; do
  key=$(echo "${name#KAFKA_}" | tr 'A-Z' 'a-z' | tr '_' '.')
  echo "$key=$value" >> "$props"
done
logdirs=$(grep '^log.dirs=' "$props" | cut -d= -f2)
cp="/opt/kafka/libs/*"
log="-Dlog4j2.configurationFile=/opt/kafka/config/log4j2.xml"
if [ ! -f "${logdirs:-/tmp/kraft-combined-logs}/meta.properties" ]; then
  id=${CLUSTER_ID:-$(java $log -cp "$cp" kafka.tools.StorageTool random-uuid | tail -n 1)}
  java $log -cp "$cp" kafka.tools.StorageTool format -t "$id" -c "$props" --ignore-formatted
fi
exec java ${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m} $log -cp "$cp" kafka.Kafka "$props"
