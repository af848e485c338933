"""recstream: a streaming real-time recommender with a feedback loop."""

__version__ = "0.1.0"
