"""Redemption codes: generated in batches, single use, atomic under concurrency."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from billing.errors import RedemptionCodeInvalid, RedemptionRateLimited
from billing.models import EntryKind, LedgerEntry, RedemptionBatch, RedemptionCode
from billing.selectors import balance_for_org
from billing.services import redemption_batch_create, redemption_redeem

USD = 1_000_000_000


def batch(count=1, usd=5, **kwargs):
    return redemption_batch_create(count=count, value_units=usd * USD, **kwargs)


@pytest.mark.django_db
def test_batch_codes_are_unique_and_stored_only_as_hashes():
    created, codes = batch(count=50)
    assert len(set(codes)) == 50
    assert all(len(c) == len("MG-XXXX-XXXX-XXXX-XXXX") for c in codes)
    stored = set(RedemptionCode.objects.filter(batch=created).values_list("code_hash", flat=True))
    assert len(stored) == 50
    assert not any(c.replace("-", "")[2:] in "".join(stored) for c in codes)


@pytest.mark.django_db
def test_redeem_credits_once(org):
    _b, [code] = batch(usd=5)
    entry = redemption_redeem(org_id=org.organization_id, code=code, acting_user=org.user)
    assert (entry.kind, entry.amount_units, entry.acting_user) == (EntryKind.REDEMPTION, 5 * USD, org.user)
    with pytest.raises(RedemptionCodeInvalid) as exc:
        redemption_redeem(org_id=org.organization_id, code=code, acting_user=org.user)
    assert exc.value.code == "redemption_code_used"
    assert balance_for_org(org_id=org.organization_id).balance_units == 5 * USD


@pytest.mark.django_db
def test_code_input_is_forgiving_about_case_and_dashes(org):
    _b, [code] = batch()
    redemption_redeem(org_id=org.organization_id, code="  " + code.lower().replace("-", " ") + " ")
    assert RedemptionCode.objects.get().redeemed_at is not None


@pytest.mark.django_db
def test_expired_and_unknown_codes(org):
    _b, [code] = batch(expires_at=timezone.now() - dt.timedelta(seconds=1))
    with pytest.raises(RedemptionCodeInvalid) as exc:
        redemption_redeem(org_id=org.organization_id, code=code)
    assert (exc.value.code, exc.value.status) == ("redemption_code_expired", 410)
    with pytest.raises(RedemptionCodeInvalid) as exc:
        redemption_redeem(org_id=org.organization_id, code="MG-AAAA-AAAA-AAAA-AAAA")
    assert exc.value.code == "redemption_code_invalid"
    assert not LedgerEntry.objects.exists()


@pytest.mark.django_db
def test_guessing_is_rate_limited(org):
    for _ in range(10):
        with pytest.raises(RedemptionCodeInvalid):
            redemption_redeem(org_id=org.organization_id, code="MG-AAAA-AAAA-AAAA-AAAA")
    _b, [code] = batch()
    with pytest.raises(RedemptionRateLimited) as exc:
        redemption_redeem(org_id=org.organization_id, code=code)
    assert exc.value.status == 429
    assert exc.value.headers["Retry-After"]


@pytest.mark.django_db
def test_redeem_api(org, session_client, key_client, add_member):
    _b, [code, other] = batch(count=2, usd=3)
    response = session_client(org).post("/api/redeem", {"code": code}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["credited_units"], body["credited"], body["balance_units"]) == (3 * USD, "3.00", 3 * USD)
    again = session_client(org).post("/api/redeem", {"code": code}, format="json")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "redemption_code_used")
    member = add_member(org.organization, "member")
    assert session_client(member).post("/api/redeem", {"code": other}, format="json").status_code == 403
    assert key_client(org).post("/api/redeem", {"code": other}, format="json").status_code == 403


@pytest.mark.django_db
def test_create_redemption_codes_command(capsys):
    call_command(
        "create_redemption_codes", "--count", "3", "--usd", "2.5", "--expires-days", "30", "--note", "promo"
    )
    codes = capsys.readouterr().out.split()
    assert len(codes) == 3
    created = RedemptionBatch.objects.get()
    assert (created.value_units, created.count, created.note) == (2_500_000_000, 3, "promo")
    assert created.expires_at > timezone.now() + dt.timedelta(days=29)


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_concurrent_redemptions_of_one_code_credit_once(make_org):
    orgs = [make_org(f"Org {i}").organization_id for i in range(8)]
    _b, [code] = batch(usd=7)
    barrier = threading.Barrier(len(orgs) * 2)
    outcomes: list[str] = []

    def redeem(org_id: int) -> None:
        try:
            barrier.wait()
            redemption_redeem(org_id=org_id, code=code)
            outcomes.append("credited")
        except RedemptionCodeInvalid as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=redeem, args=(o,)) for o in orgs + orgs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("credited") == 1
    assert outcomes.count("redemption_code_used") == len(threads) - 1
    assert LedgerEntry.objects.filter(kind=EntryKind.REDEMPTION).count() == 1
    assert sum(balance_for_org(org_id=o).balance_units for o in orgs) == 7 * USD
