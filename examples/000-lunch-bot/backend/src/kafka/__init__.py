"""Kafka events of the lunch bot: topic names, event schemas and the producer.

Imported as `src.kafka`: never put `backend/src` itself on sys.path, or this package would shadow
kafka-python's top-level `kafka` module.
"""
