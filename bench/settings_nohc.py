from config.settings.production import *  # noqa: F403
from config.settings.production import DATABASES

DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
