"""Real-time serving: a FastAPI service with exploration, logged propensities, a durable
event store (SQLite or PostgreSQL) and online learning. Needs the ``serve`` extra.

Modules, from the request inwards: ``app`` (HTTP: routes, errors, the fast hot routes),
``service`` (the policy, store, learner and workers of one loaded run), ``batching`` (the
group workers), ``policy`` (a request's ranked, explored and explained slate), ``learner``
(the online state, replayed from the feedback log), ``store`` (the event store's schema and
queries) and ``backends`` (SQLite, PostgreSQL and ``open_store``).
"""

from recloop.serve.settings import Settings

__all__ = ["Settings"]
