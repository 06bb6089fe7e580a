"""Real-time serving: a FastAPI service with exploration, logged propensities, a durable
event store (SQLite or PostgreSQL) and online learning. Needs the ``serve`` extra."""

from recloop.serve.settings import Settings

__all__ = ["Settings"]
