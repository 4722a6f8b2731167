"""Low-balance alert: one e-mail to owners and admins when available falls below the
threshold, enqueued after the settlement commits; re-armed by a credit."""

from __future__ import annotations

import pytest
from django.core import mail

from billing.models import BillingAccount
from billing.services import billing_settings_update, hold_place, hold_settle, low_balance_alert_send
from config.celery import app as celery_app

pytestmark = pytest.mark.django_db

USD = 1_000_000_000


@pytest.fixture
def eager_celery():
    """Run tasks in-process (no worker in this test), the way a worker would run them."""
    conf = celery_app.conf
    saved = conf.task_always_eager, conf.task_eager_propagates
    conf.task_always_eager, conf.task_eager_propagates = True, True
    yield
    conf.task_always_eager, conf.task_eager_propagates = saved


def spend(org, units: int, key: str) -> None:
    hold_id = hold_place(org_id=org.organization_id, amount_units=units, reference=key)
    hold_settle(hold_id=hold_id, actual_units=units, idempotency_key=key)


def test_settlement_below_threshold_mails_owners_and_admins_once(
    org, add_member, grant, eager_celery, django_capture_on_commit_callbacks
):
    admin = add_member(org.organization, "admin")
    add_member(org.organization, "member")
    grant(org.organization_id, 10 * USD)
    billing_settings_update(org_id=org.organization_id, low_balance_threshold_units=5 * USD)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        spend(org, 4 * USD, "a")  # available 6 ≥ 5: nothing
    assert callbacks == []
    assert mail.outbox == []
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        spend(org, 2 * USD, "b")  # available 4 < 5
    assert len(callbacks) == 1
    assert len(mail.outbox) == 1
    assert sorted(mail.outbox[0].to) == sorted([org.user.email, admin.user.email])
    assert "4.00 USD" in mail.outbox[0].body
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        spend(org, USD, "c")  # still below, already alerted: no task at all
    assert callbacks == []
    assert len(mail.outbox) == 1
    # A credit re-arms it; the next dip below mails again.
    grant(org.organization_id, 10 * USD)
    assert BillingAccount.objects.get(organization_id=org.organization_id).low_balance_alerted_at is None
    with django_capture_on_commit_callbacks(execute=True):
        spend(org, 11 * USD, "d")
    assert len(mail.outbox) == 2


def test_the_task_sends_once_even_if_run_twice(org, grant):
    grant(org.organization_id, USD)
    billing_settings_update(org_id=org.organization_id, low_balance_threshold_units=2 * USD)
    account = BillingAccount.objects.get(organization_id=org.organization_id)
    assert low_balance_alert_send(account_id=account.pk) is True
    assert low_balance_alert_send(account_id=account.pk) is False
    assert len(mail.outbox) == 1


def test_no_threshold_no_alert(org, grant):
    grant(org.organization_id, USD)
    account = BillingAccount.objects.get(organization_id=org.organization_id)
    assert low_balance_alert_send(account_id=account.pk) is False
    assert mail.outbox == []


def test_a_failed_send_is_undone_so_the_retry_sends(org, grant, settings):
    grant(org.organization_id, USD)
    billing_settings_update(org_id=org.organization_id, low_balance_threshold_units=2 * USD)
    account = BillingAccount.objects.get(organization_id=org.organization_id)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    with pytest.raises(OSError):
        low_balance_alert_send(account_id=account.pk)
    assert BillingAccount.objects.get(pk=account.pk).low_balance_alerted_at is None
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert low_balance_alert_send(account_id=account.pk) is True
    assert len(mail.outbox) == 1
