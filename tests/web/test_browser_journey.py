"""The whole journey in a real browser (Debian's Chromium via Playwright), against the live
gateway and the upstream simulator:

sign up → confirm the e-mail → see the $0.10 starter credit → create a key → call a model with
the openai SDK → see the request in the usage log and in the chart → redeem a code → see the
new balance and the ledger lines. Every page is saved as a screenshot (desktop and phone)
under artifacts/screenshots/.
"""

from __future__ import annotations

import re

import pytest
from django.core import mail

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = "ada@example.com"
PASSWORD = "a-long-test-password-42"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def live(web_server, web_simulator, settings):
    from models_catalog.models import AiModel
    from models_catalog.services import catalogue_changed, catalogue_seed, channels_sync_simulator

    if not AiModel.objects.exists():
        catalogue_seed()
    channels_sync_simulator(base_url=web_simulator.url)
    catalogue_changed()
    settings.MODELGATE_PUBLIC_URL = web_server.url
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    settings.RELAY_UPSTREAM_READ_TIMEOUT = 10.0
    return web_server


def _confirmation_link() -> str:
    # The live server runs in this process (a thread), so the locmem outbox is shared.
    for message in reversed(mail.outbox):
        if EMAIL in message.to:
            found = re.search(r"/accounts/confirm-email/[^/\s]+/", message.body)
            if found:  # the path only: the e-mail's host is the Site's, not the live server's
                return found.group(0)
    raise AssertionError(f"no confirmation e-mail in {[m.subject for m in mail.outbox]}")


def _balance_texts(org_id: int) -> tuple[str, str]:
    """(exact, rounded to the cent) as the pages show the organization's balance."""
    from billing.selectors import balance_for_org
    from inference.dashboard.templatetags import usd, usd_short

    units = balance_for_org(org_id=org_id).balance_units
    return usd(units), usd_short(units)


def test_signup_to_usage_to_redeem(live, browser, shots):
    from openai import OpenAI

    from accounts.models import Membership, User
    from billing.services import redemption_batch_create
    from inference.models import UsageRecord
    from inference.rollups import usage_rollups_fold

    base = live.url
    anon = browser.new_context(viewport=DESKTOP, locale="en-US")
    page = anon.new_page()
    console_errors: list[str] = []
    page.on("pageerror", lambda exc: console_errors.append(str(exc)))

    # --- the public pages -----------------------------------------------------------------
    page.goto(base + "/")
    assert page.get_by_role("heading", name="One account, one API key, every model.").is_visible()
    shots(page, "desktop-01-landing")
    page.goto(base + "/models/")
    shots(page, "desktop-02-models")
    page.goto(base + "/accounts/login/")
    shots(page, "desktop-03-login")
    page.goto(base + "/accounts/password/reset/")
    shots(page, "desktop-04-password-reset")

    # --- sign up and confirm the address ---------------------------------------------------
    page.goto(base + "/accounts/signup/")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.fill("input[name=organization]", "Ada Labs")
    shots(page, "desktop-05-signup")
    page.click("form button[type=submit]")
    page.wait_for_url(re.compile(r".*/accounts/confirm-email/$"))
    shots(page, "desktop-06-verify-email-sent")

    page.goto(base + _confirmation_link())
    page.wait_for_url(re.compile(r".*/dashboard/$"))
    org_id = Membership.objects.get(user__email=EMAIL).organization_id
    assert page.locator("#balance-value").inner_text() == "$0.10"  # the starter credit
    assert page.locator("#usage-empty").is_visible()
    shots(page, "desktop-07-overview-empty")

    # --- create a key in the UI -------------------------------------------------------------
    page.click("nav.tabs >> text=API keys")
    page.fill("#key-create input[name=name]", "laptop")
    page.fill("#key-create input[name=rpm_limit]", "60")
    page.click("#key-create button[type=submit]")
    secret = page.locator("#new-secret").inner_text().strip()
    assert secret.startswith("mg-")
    assert secret in page.locator("#qs-openai").inner_text()  # the samples carry the new key
    shots(page, "desktop-08-key-created")
    page.reload()
    assert page.locator("#new-secret").count() == 0  # shown once
    assert "laptop" in page.locator("#keys-table").inner_text()
    shots(page, "desktop-09-keys")

    # --- a real call with the openai SDK through the simulator upstream -----------------------
    client = OpenAI(base_url=base + "/v1", api_key=secret, max_retries=0, timeout=30)
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello from the browser test."}]
    )
    assert reply.choices[0].message.content
    record = UsageRecord.objects.get(organization_id=org_id)
    assert record.cost_units > 0

    # --- the request shows in the chart and in the usage log -----------------------------------
    page.click("nav.tabs >> text=Overview")
    page.wait_for_function("window.spendChart !== undefined")
    labels = page.evaluate("window.spendChart.data.datasets.map(d => d.label)")
    assert labels == ["gpt-4o-mini"]
    today_spend = page.evaluate("window.spendChart.data.datasets[0].data.at(-1)")
    assert today_spend == record.cost_units
    assert "gpt-4o-mini" in page.locator("text=Top models >> xpath=..").inner_text()
    shots(page, "desktop-10-overview")

    page.click("nav.tabs >> text=Usage")
    table = page.locator("#usage-table").inner_text()
    assert "gpt-4o-mini" in table
    assert "laptop" in table
    shots(page, "desktop-11-usage")
    page.click("#usage-table a >> nth=0")
    page.wait_for_url(re.compile(rf".*/usage/{record.request_id}/$"))
    assert "Cost breakdown" in page.content()
    assert "channel" not in page.locator("main").inner_text().lower()  # channel details hidden
    shots(page, "desktop-12-usage-detail")

    # --- redeem a code; the balance and the ledger follow ----------------------------------------
    _batch, codes = redemption_batch_create(count=1, value_units=5_000_000_000, note="browser test")
    page.click("nav.tabs >> text=Billing")
    page.fill("#redeem-form input[name=code]", codes[0])
    page.click("#redeem-form button[type=submit]")
    page.wait_for_selector(".messages li.success")
    expected, rounded = _balance_texts(org_id)
    assert rounded.startswith("$5.")  # 0.10 + 5.00 − the call
    assert page.locator("#billing-balance-value").inner_text() == rounded
    ledger = page.locator("#ledger-table").inner_text()
    for kind in ("Redemption code", "Usage", "Signup credit"):
        assert kind in ledger, kind
    assert "+$5.00" in ledger
    assert "+$0.10" in ledger
    assert expected in ledger  # the running balance after the last entry
    shots(page, "desktop-13-billing")

    # --- the remaining pages --------------------------------------------------------------------
    page.click("nav.tabs >> text=Quickstart")
    assert base + "/v1" in page.locator("#base-url").inner_text()
    shots(page, "desktop-14-quickstart")
    page.click("nav.tabs >> text=Organization")
    assert EMAIL in page.locator("#members-table").inner_text()
    shots(page, "desktop-15-organization")
    page.goto(base + "/usage/?status=error")
    shots(page, "desktop-16-usage-filtered-empty")

    User.objects.filter(email=EMAIL).update(is_staff=True)
    usage_rollups_fold(days=1)
    page.goto(base + "/ops/")
    assert "gpt-4o-mini" in page.locator("main").inner_text()
    shots(page, "desktop-17-ops")

    # --- the same pages at phone width, and once in Chinese ------------------------------------------
    phone = anon.new_page()
    phone.set_viewport_size(PHONE)
    for name, path in [
        ("01-landing", "/"),
        ("07-overview", "/dashboard/"),
        ("09-keys", "/keys/"),
        ("11-usage", "/usage/"),
        ("12-usage-detail", f"/usage/{record.request_id}/"),
        ("13-billing", "/billing/"),
        ("14-quickstart", "/quickstart/"),
        ("15-organization", "/organization/"),
        ("02-models", "/models/"),
        ("17-ops", "/ops/"),
    ]:
        phone.goto(base + path)
        if path == "/dashboard/":
            phone.wait_for_function("window.spendChart !== undefined")
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"] + 1, f"{path} scrolls sideways at phone width ({width}px)"
        shots(phone, f"phone-{name}")

    page.goto(base + "/dashboard/")
    with page.expect_navigation():
        page.select_option("#language-select", "zh-hans")  # the switcher posts on change
    page.wait_for_function("window.spendChart !== undefined")
    assert "余额" in page.locator("main").inner_text()
    shots(page, "desktop-18-overview-zh")

    anon.close()
    assert not console_errors, console_errors
