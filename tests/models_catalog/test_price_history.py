from __future__ import annotations

import datetime as dt

import pytest

from config.errors import ValidationFailed
from models_catalog.errors import PriceNotAvailable
from models_catalog.info import Usage
from models_catalog.pricing import cost_compute, usd
from models_catalog.selectors import model_resolve
from models_catalog.services import price_create

USAGE = Usage(input_tokens=1_000, output_tokens=1_000)


def test_old_usage_keeps_its_price(catalogue):
    change = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    price_create(model_id="gpt-4o", effective_from=change, input_per_mtok=usd("5"), output_per_mtok=usd("20"))
    gpt4o = model_resolve("gpt-4o")  # the cache was invalidated by price_create
    before = cost_compute(model=gpt4o, usage=USAGE, at=change - dt.timedelta(seconds=1))
    after = cost_compute(model=gpt4o, usage=USAGE, at=change)
    # before: 1000 × 2,500 + 1000 × 10,000 = 12,500,000; after: 1000 × 5,000 + 1000 × 20,000 = 25,000,000
    assert before.total_units == 12_500_000
    assert before.price_effective_from == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert after.total_units == 25_000_000
    assert after.price_effective_from == change


def test_a_scheduled_price_is_not_current_yet(catalogue):
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    price_create(model_id="gpt-4o", effective_from=future, input_per_mtok=1, output_per_mtok=1)
    gpt4o = model_resolve("gpt-4o")
    assert gpt4o.current_price.input_per_mtok == usd("2.50")
    assert gpt4o.price_at(future).input_per_mtok == 1


def test_no_price_before_the_first(catalogue):
    with pytest.raises(PriceNotAvailable):
        cost_compute(model=model_resolve("gpt-4o"), usage=USAGE, at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))


def test_history_is_append_only(catalogue):
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(ValidationFailed):
        price_create(model_id="gpt-4o", effective_from=start, input_per_mtok=1, output_per_mtok=1)
    with pytest.raises(ValidationFailed):
        price_create(
            model_id="gpt-4o",
            effective_from=start + dt.timedelta(days=1),
            input_per_mtok=-1,
            output_per_mtok=1,
        )
