"""Streaming ingestion: events -> validation (dead-letter) -> idempotent state -> online/offline features.

The core here is broker- and store-agnostic: :mod:`creditops.streaming.events` validates a batch of events
with the batch validation rules, :mod:`creditops.streaming.state` keeps each applicant's transaction history
in Redis keyed by transaction id (so a redelivered event changes nothing), and
:class:`creditops.streaming.consumer.StreamProcessor` recomputes the behavioural and derived features of
the applicants a batch touched with the very functions batch uses. The broker
(:mod:`creditops.streaming.broker`: NATS JetStream here, Kafka behind the same protocol) and the Feast
online layout (``feast_repo.stream``) are adapters.
"""
