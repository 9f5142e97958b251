"""Supervision: the supervisor, the worker process it watches, and how a worker died."""
