"""Top-up bonus arithmetic (pure: no database access).

How rules combine: among the active rules that apply to a top-up (amount ≥ the rule's
minimum, and ``first_topup_only`` rules only for the organization's first credited
top-up), the bonus is **the highest percentage** plus **the highest fixed amount**.
Percentages never stack with each other, fixed amounts never stack with each other.
The percentage part is rounded down to a whole nano-USD.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .models import BonusRule

BASIS_POINTS = 10_000


@dataclass(frozen=True)
class BonusPreview:
    amount_units: int
    bonus_units: int
    is_first_topup: bool
    rules: tuple[str, ...]

    @property
    def total_units(self) -> int:
        return self.amount_units + self.bonus_units


def bonus_compute(*, rules: Iterable[BonusRule], amount_units: int, is_first_topup: bool) -> BonusPreview:
    applicable = [
        rule
        for rule in rules
        if rule.active
        and amount_units >= rule.min_amount_units
        and (is_first_topup or not rule.first_topup_only)
    ]
    best_percent = max(
        (r for r in applicable if r.percent_bp > 0), key=lambda r: (r.percent_bp, r.pk or 0), default=None
    )
    best_fixed = max(
        (r for r in applicable if r.fixed_units > 0), key=lambda r: (r.fixed_units, r.pk or 0), default=None
    )
    bonus = 0
    names: list[str] = []
    if best_percent is not None:
        bonus += amount_units * best_percent.percent_bp // BASIS_POINTS
        names.append(best_percent.name)
    if best_fixed is not None:
        bonus += best_fixed.fixed_units
        if best_fixed is not best_percent:
            names.append(best_fixed.name)
    return BonusPreview(
        amount_units=amount_units, bonus_units=bonus, is_first_topup=is_first_topup, rules=tuple(names)
    )
