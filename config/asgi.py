import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

application = get_asgi_application()

# The relay's POST endpoints skip the (synchronous) middleware stack: config/relay_asgi.py.
from config.relay_asgi import RelayASGIHandler, Router, relay_paths  # noqa: E402

application = Router(application, RelayASGIHandler(), relay_paths())

from django.conf import settings  # noqa: E402  (settings are ready only after the app is built)

if settings.MODELGATE_SERVE_STATIC:
    # The embedded default has no front-end server: serve /static/ from the ASGI app.
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    application = ASGIStaticFilesHandler(application)

# Graceful shutdown: answer the ASGI lifespan protocol; on shutdown wait for the stream pumps
# that outlive their requests (they settle the holds) — see config/lifespan.py.
from config.lifespan import LifespanApp  # noqa: E402

application = LifespanApp(application)
