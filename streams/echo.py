"""The Kafka echo floor: a pass-through consumer→producer that answers each record with a tiny
JSON naming its source, like a worker that does nothing. Run by ``recstream bench stream``:
``python -m recstream.streams.echo BOOTSTRAP IN_TOPIC OUT_TOPIC``."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def echo(bootstrap: str, source: str, target: str) -> None:
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"echo-{source}",
        auto_offset_reset="earliest",
        enable_auto_commit=True,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=-1)
    await consumer.start()
    await producer.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    try:
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=500)
            for tp, records in batches.items():
                for rec in records:
                    src = {"topic": tp.topic, "partition": tp.partition, "offset": rec.offset}
                    await producer.send(target, json.dumps({"source": src}).encode(), key=rec.key)
    finally:
        await producer.stop()
        await consumer.stop()


if __name__ == "__main__":
    asyncio.run(echo(*sys.argv[1:4]))
