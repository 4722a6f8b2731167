"""Settings for the test-suite. Services come from the environment like anywhere else."""

from .base import *
from .base import DATA_DIR, DATABASES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, so servers and workers started by tests in other processes see the same data.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}

# Live servers started by tests hand their connections back after each request.
DATABASES["default"]["CONN_MAX_AGE"] = 0
