"""The embedded default used by ``make run``: debug on, console e-mail."""

from .base import *
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
