"""Kafka stream processing: the faust app, the event contract, user state, the pipeline that
turns each event into a fresh diverse list, and the stream benchmark."""

from recstream.streams.app import WorkerConfig, create_app
from recstream.streams.connection import KafkaConnection, redis_client
from recstream.streams.decoding import InvalidEvent, Limits, decode_event
from recstream.streams.pipeline import Pipeline, PipelineConfig
from recstream.streams.recommender import ModelRecommender, NoModel, Recommender, Request
from recstream.streams.records import CatalogItem, DeadLetter, Event, ModelUpdate, Recommendation

__all__ = [
    "CatalogItem",
    "DeadLetter",
    "Event",
    "InvalidEvent",
    "KafkaConnection",
    "Limits",
    "ModelRecommender",
    "ModelUpdate",
    "NoModel",
    "Pipeline",
    "PipelineConfig",
    "Recommendation",
    "Recommender",
    "Request",
    "WorkerConfig",
    "create_app",
    "decode_event",
    "redis_client",
]
