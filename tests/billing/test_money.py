"""Money conversions: exact integers of nano-USD, never float."""

from decimal import Decimal

import pytest

from billing.money import cents_to_units, format_usd, units_to_cents, usd_to_units


@pytest.mark.parametrize(
    ("usd", "units"),
    [
        ("0.10", 100_000_000),
        ("1", 1_000_000_000),
        ("0.000000001", 1),
        (Decimal("-2.5"), -2_500_000_000),
        (3, 3 * 10**9),
    ],
)
def test_usd_to_units_is_exact(usd, units):
    assert usd_to_units(usd) == units


@pytest.mark.parametrize("bad", ["0.0000000001", "abc", "NaN", "Infinity", ""])
def test_usd_to_units_refuses_what_it_cannot_represent(bad):
    with pytest.raises(ValueError):
        usd_to_units(bad)


@pytest.mark.parametrize(
    ("units", "text"),
    [
        (0, "0.00"),
        (100_000_000, "0.10"),
        (12_000_000_345, "12.000000345"),
        (-1, "-0.000000001"),
        (5 * 10**18, "5000000000.00"),
    ],
)
def test_format_usd(units, text):
    assert format_usd(units) == text


def test_cents():
    assert cents_to_units(2550) == 25_500_000_000
    assert units_to_cents(25_500_000_000) == 2550
    with pytest.raises(ValueError):
        units_to_cents(1)
