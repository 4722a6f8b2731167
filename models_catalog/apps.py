from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _catalogue_migrated(sender, **kwargs) -> None:
    """A data migration may have changed the catalogue: running processes rebuild their snapshot
    at their next version check instead of serving the cached one until it expires."""
    import logging

    from config.cachesafe import CACHE_ERRORS

    from .services import _bump

    try:
        _bump()
    except CACHE_ERRORS as exc:  # no cache reachable: snapshots expire by themselves
        logging.getLogger(__name__).warning("catalogue version not bumped after migrate: %s", exc)


class ModelsCatalogConfig(AppConfig):
    name = "models_catalog"

    def ready(self) -> None:
        post_migrate.connect(_catalogue_migrated, sender=self, dispatch_uid="models_catalog.migrated")
