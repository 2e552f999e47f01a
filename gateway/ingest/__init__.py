"""Ingest: the intake that settles and accepts batches, and the outbox, the durable log of accepted batches."""
