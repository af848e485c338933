"""Kafka stream processing: the faust app, the event contract, user state, the pipeline that
turns each event into a fresh diverse list, and the stream benchmark.

Nothing is imported here: ``recstream.streams.records`` must not cost faust and redis."""
