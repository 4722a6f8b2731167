"""Template filters for money and counts (registered as the ``dashboard`` library in settings).

Money stays an integer of nano-USD until it is turned into text here; no float."""

from __future__ import annotations

from django import template

from billing.money import UNITS_PER_CENT, format_usd

register = template.Library()


@register.filter
def usd(units) -> str:
    """Exact: ``100000000`` → ``$0.10``; ``1234`` → ``$0.000001234``; ``-5e8`` → ``−$0.50``."""
    if units is None or units == "":
        return "—"
    units = int(units)
    text = format_usd(abs(units))
    return f"−${text}" if units < 0 else f"${text}"


@register.filter
def usd_short(units) -> str:
    """Rounded half-up to the cent, for headline numbers (below one cent: up to 6 decimals)."""
    if units is None or units == "":
        return "—"
    units = int(units)
    sign, units = ("−" if units < 0 else ""), abs(units)
    if 0 < units < UNITS_PER_CENT:
        micro = -(-units // 1000)  # ceil to micro-dollars
        whole, frac = divmod(micro, 1_000_000)
        return f"{sign}${whole}.{str(frac).rjust(6, '0').rstrip('0')}"
    cents = (units + UNITS_PER_CENT // 2) // UNITS_PER_CENT
    return f"{sign}${cents // 100:,}.{cents % 100:02d}"


@register.filter
def signed_usd(units) -> str:
    if units is None:
        return "—"
    units = int(units)
    return ("+" if units > 0 else "") + usd(units)


@register.filter
def num(value) -> str:
    """Thousands separators: 1234567 → 1,234,567."""
    if value is None or value == "":
        return "—"
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


@register.filter
def cents_usd(cents) -> str:
    cents = int(cents or 0)
    return f"${cents // 100:,}.{cents % 100:02d}"


@register.filter
def usd_exact(units) -> str:
    """The exact amount without a currency sign: ``1250000000`` → ``1.25`` (``-0.5`` when negative)."""
    if units is None or units == "":
        return "—"
    units = int(units)
    return ("-" if units < 0 else "") + format_usd(abs(units))
