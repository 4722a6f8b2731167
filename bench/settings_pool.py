"""Bench-only settings: production settings plus Django's psycopg connection pool (per worker process).

The shipped production settings keep one persistent connection per request thread
(CONN_MAX_AGE=60, no pool), which runs PostgreSQL out of connections under load; this
wrapper measures the gateway with a bounded pool instead (docs/benchmarks.md says so).
"""

from config.settings.production import *  # noqa: F403
from config.settings.production import DATABASES, env

DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
    "min_size": 2,
    "max_size": env.int("BENCH_DB_POOL_MAX", default=16),
    "timeout": 30,
}
