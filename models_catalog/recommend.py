"""Which model for this task? best / alternative / economical, with the reason.

* best — the active model with the highest strength score for the task (ties: cheaper).
* alternative — the strongest model from a *different vendor* than the best (a fallback
  when one vendor is down or refuses), as the seed article's scenario table does.
* economical — the cheapest remaining model scoring at least ``ECONOMY_MIN_SCORE``.

"Cheapest" is the cost of a reference request for the task (pricing.reference_usage):
1,000 input tokens + 500 output tokens + one 1024×1024 image for vision tasks; one
1024×1024 image for generation; 1,000 tokens for embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.errors import ValidationFailed

from .constants import Modality, ModelStatus, Task, task_normalize
from .guard import missing_capabilities
from .info import ModelInfo, RequestNeeds
from .pricing import reference_cost, units_to_usd
from .selectors import catalogue_snapshot, needs_for_task

ECONOMY_MIN_SCORE = 75


@dataclass(frozen=True)
class Candidate:
    model: ModelInfo
    score: int
    reference_units: int
    headline_units: int  # what max_price is compared with


@dataclass(frozen=True)
class Choice:
    candidate: Candidate
    reason: str


@dataclass(frozen=True)
class Recommendation:
    task: str
    needs: RequestNeeds
    best: Choice | None
    alternative: Choice | None
    economical: Choice | None
    ranked: tuple[Candidate, ...]
    price_basis: str


def _headline(model: ModelInfo, needs: RequestNeeds, reference_units: int) -> int:
    if needs.output == Modality.IMAGE:
        return reference_units  # one 1024×1024 image
    price = model.current_price
    return price.input_per_mtok if price else 0


def models_recommend(*, task: str, max_price_units: int | None = None) -> Recommendation:
    normalized = task_normalize(task)
    if normalized is None:
        raise ValidationFailed(f"Unknown task '{task}'.", extra={"tasks": list(Task.values)})
    needs = needs_for_task(normalized)
    per_image = needs.output == Modality.IMAGE
    candidates = []
    for info in catalogue_snapshot().models.values():
        score = info.task_score(normalized)
        if info.status != ModelStatus.ACTIVE or score <= 0 or missing_capabilities(info, needs):
            continue
        ref = reference_cost(info, needs)
        if ref is None:
            continue
        headline = _headline(info, needs, ref)
        if max_price_units is not None and headline > max_price_units:
            continue
        candidates.append(Candidate(info, score, ref, headline))
    candidates.sort(key=lambda c: (-c.score, c.reference_units, c.model.id))
    label = Task(normalized).label

    best = alternative = economical = None
    if candidates:
        top = candidates[0]
        note = top.model.task_note(normalized)
        best = Choice(
            top,
            f"Highest strength for {label} ({top.score}/100)" + (f": {note}." if note else "."),
        )
        other = next((c for c in candidates[1:] if c.model.vendor != top.model.vendor), None)
        if other:
            note = other.model.task_note(normalized)
            alternative = Choice(
                other,
                f"Strongest from another vendor ({other.model.vendor}, {other.score}/100), a fallback "
                f"if {top.model.vendor} is unavailable" + (f": {note}." if note else "."),
            )
        taken = {top.model.id, other.model.id if other else None}
        cheap = sorted(
            (c for c in candidates if c.model.id not in taken and c.score >= ECONOMY_MIN_SCORE),
            key=lambda c: (c.reference_units, -c.score, c.model.id),
        )
        if cheap and cheap[0].reference_units < top.reference_units:
            pick = cheap[0]
            economical = Choice(
                pick,
                f"Cheapest model scoring at least {ECONOMY_MIN_SCORE}/100 ({pick.score}/100): "
                f"${units_to_usd(pick.reference_units)} for the reference request vs "
                f"${units_to_usd(top.reference_units)} on {top.model.id}.",
            )
    basis = "USD per image (1024×1024)" if per_image else "USD per 1M input tokens"
    return Recommendation(
        task=normalized,
        needs=needs,
        best=best,
        alternative=alternative,
        economical=economical,
        ranked=tuple(candidates),
        price_basis=basis,
    )
