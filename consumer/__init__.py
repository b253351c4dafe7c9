"""Inference workers: a Redis Streams consumer group that turns JobRequested into outcomes."""
