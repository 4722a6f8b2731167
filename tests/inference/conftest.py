"""A live gateway (uvicorn + the Django ASGI app, in-process) in front of the upstream simulator."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from inference.simulator.server import running_simulator
from tests.live import LiveServer


@pytest.fixture(scope="session")
def simulator():
    with running_simulator() as sim:
        yield sim


@pytest.fixture(scope="session")
def gateway_server():
    """The production ASGI app (config.asgi: the relay's lean handler + the full Django stack)."""
    from config.asgi import application

    server = LiveServer(application).start()
    yield server
    server.stop()


@dataclass
class Gateway:
    url: str
    simulator: object
    owner: object  # owner membership of the test organization
    org: object
    secret: str
    key: object

    @property
    def openai_base(self) -> str:
        return self.url + "/v1"

    def balance(self) -> int:
        from billing.services import billing_account_for_org

        return billing_account_for_org(org_id=self.org.id).balance_units

    def records(self):
        from inference.models import UsageRecord

        return list(UsageRecord.objects.filter(organization=self.org).order_by("id"))

    def wait_settled(self, count: int, timeout: float = 15.0):
        """Streams settle in a background task (before their end reaches a client that stayed;
        after it drained the upstream for one that hung up): wait until ``count`` records exist."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            records = self.records()
            if len(records) >= count:
                return records
            time.sleep(0.02)
        raise AssertionError(f"only {len(self.records())} of {count} requests settled")


@pytest.fixture
def catalogue(transactional_db):
    from models_catalog.models import AiModel
    from models_catalog.services import catalogue_changed, catalogue_seed

    if not AiModel.objects.exists():
        catalogue_seed()
    catalogue_changed()


@pytest.fixture
def gateway(catalogue, simulator, gateway_server, make_org, settings):
    """An organization with $5.00 of credit, an API key, and simulator channels for every vendor."""
    from accounts.services import api_key_create
    from billing.services import credit_adjust
    from models_catalog.services import channels_sync_simulator

    settings.RELAY_UPSTREAM_READ_TIMEOUT = 5.0
    settings.RELAY_DRAIN_SECONDS = 5.0
    simulator.app.reset() if hasattr(simulator.app, "reset") else None
    channels_sync_simulator(base_url=simulator.url)
    owner = make_org(name="Relay Test Org")
    credit_adjust(
        org_id=owner.organization_id,
        amount_units=5_000_000_000,
        reason="test credit",
        acting_user=owner.user,
    )
    key, secret = api_key_create(actor=owner, name="relay tests")
    yield Gateway(
        url=gateway_server.url,
        simulator=simulator,
        owner=owner,
        org=owner.organization,
        secret=secret,
        key=key,
    )
    _wait_for_pumps()


def _wait_for_pumps(timeout: float = 15.0) -> None:
    """A stream is settled by its pump task, which outlives a client that hung up (it drains the
    upstream first): let the test's pumps finish before the ledger audit (and the next test)
    looks at the books."""
    import time

    from inference.relay import _background

    deadline = time.monotonic() + timeout
    while _background and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _background, f"{len(_background)} stream(s) still settling after {timeout} s"
