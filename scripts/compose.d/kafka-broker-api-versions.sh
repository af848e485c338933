#!/bin/sh
exec java -Xmx128m -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.xml -cp "/opt/kafka/libs/*" org.apache.kafka.tools.BrokerApiVersionsCommand "$@"
