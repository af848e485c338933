"""Kafka stream processing: the faust app, the event contract, validation and dead letters."""

from recstream.streams.app import WorkerConfig, create_app
from recstream.streams.connection import KafkaConnection, redis_client
from recstream.streams.decoding import InvalidEvent, Limits, decode_event
from recstream.streams.records import CatalogItem, DeadLetter, Event, ModelUpdate, Recommendation

__all__ = [
    "CatalogItem",
    "DeadLetter",
    "Event",
    "InvalidEvent",
    "KafkaConnection",
    "Limits",
    "ModelUpdate",
    "Recommendation",
    "WorkerConfig",
    "create_app",
    "decode_event",
    "redis_client",
]
