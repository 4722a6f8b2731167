"""The seed catalogue comes from a data migration, but transactional tests anywhere in the
suite flush the database; ``catalogue`` reloads it (idempotently) when it is gone."""

from __future__ import annotations

import pytest


@pytest.fixture
def catalogue(db):
    from models_catalog.models import AiModel
    from models_catalog.services import catalogue_changed, catalogue_seed

    if not AiModel.objects.filter(model_id="gpt-4o").exists():
        catalogue_seed()
    catalogue_changed()


@pytest.fixture
def resolve(catalogue):
    from models_catalog.selectors import model_resolve

    return model_resolve
