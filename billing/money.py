"""Money arithmetic. Every amount is an ``int`` of nano-USD (1 unit = 10⁻⁹ USD).

Stripe speaks cents; the conversion happens here and only at the Stripe boundary.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, InvalidOperation

UNITS_PER_USD = 1_000_000_000
UNITS_PER_CENT = UNITS_PER_USD // 100
_NANO = Decimal("0.000000001")


def usd_to_units(value: Decimal | str | int) -> int:
    """Exact conversion of a USD amount to units; more than 9 decimals is an error."""
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a decimal amount: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    units = amount * UNITS_PER_USD
    if units != units.to_integral_value():
        raise ValueError(f"more precise than 1 nano-USD: {value!r}")
    return int(units)


def units_to_usd(units: int) -> Decimal:
    return (Decimal(units) / UNITS_PER_USD).quantize(_NANO, rounding=ROUND_DOWN)


def format_usd(units: int) -> str:
    """A decimal string with at least 2 and at most 9 decimals: ``0.10``, ``-1.000000123``."""
    text = f"{units_to_usd(units):f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0").ljust(2, "0")
    return f"{whole}.{frac}"


def cents_to_units(cents: int) -> int:
    return int(cents) * UNITS_PER_CENT


def units_to_cents(units: int) -> int:
    """Exact; raises ``ValueError`` when ``units`` is not a whole number of cents."""
    cents, rest = divmod(int(units), UNITS_PER_CENT)
    if rest:
        raise ValueError("not a whole number of cents")
    return cents
