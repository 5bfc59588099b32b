"""Orchestration: the engine, its registries, the subscription hub and per-connection outboxes. No sockets."""
