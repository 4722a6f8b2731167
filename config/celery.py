import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("modelgate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

from . import worker_metrics  # noqa: E402, F401  (task signals; the worker's /metrics endpoint)


@app.task(name="modelgate.ping")
def ping() -> str:
    """A no-op task: health checks and the broker benchmark use it to see a worker answer."""
    return "pong"
