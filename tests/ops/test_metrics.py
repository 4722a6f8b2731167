"""/metrics: token or loopback only; relay counters and scrape-time money gauges."""

from __future__ import annotations

import re

import httpx
import pytest
from django.test import Client

pytestmark = pytest.mark.django_db(transaction=True)


def _value(text: str, name: str, **labels) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_requires_the_token_when_set(settings):
    settings.METRICS_TOKEN = "t0ken-for-metrics"
    assert Client().get("/metrics").status_code == 403
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    ok = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer t0ken-for-metrics")
    assert ok.status_code == 200
    assert ok["Content-Type"].startswith("text/plain")


def test_metrics_without_token_only_from_loopback_not_through_a_proxy(settings):
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics").status_code == 200  # test client: REMOTE_ADDR 127.0.0.1
    assert Client(REMOTE_ADDR="203.0.113.9").get("/metrics").status_code == 403
    assert Client().get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403


def test_relayed_requests_and_money_show_up(gateway, settings):
    settings.METRICS_TOKEN = "tok"
    settings.METRICS_LEDGER_CACHE_SECONDS = 0  # the ledger sums are otherwise reused for a minute
    auth = {"HTTP_AUTHORIZATION": "Bearer tok"}
    before = Client().get("/metrics", **auth).content.decode()
    labels = {"model": "gpt-4o", "format": "openai", "status": "ok", "plan": "standard"}
    start = _value(before, "modelgate_relay_requests_total", **labels) or 0

    response = httpx.post(
        gateway.openai_base + "/chat/completions",
        headers={"Authorization": f"Bearer {gateway.secret}"},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi [[sim tokens=5]]"}]},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    gateway.wait_settled(1)

    text = Client().get("/metrics", **auth).content.decode()
    assert _value(text, "modelgate_relay_requests_total", **labels) == start + 1
    assert _value(text, "modelgate_relay_latency_seconds_count", model="gpt-4o", format="openai") >= 1
    assert _value(text, "modelgate_holds_open") == 0
    assert _value(text, "modelgate_holds_open_units") == 0
    assert _value(text, "modelgate_ledger_sum_units", kind="adjustment") >= 5_000_000_000
    assert re.search(r'modelgate_ledger_sum_units\{kind="usage"\} -\d', text)
    # Secrets never reach the metrics.
    assert gateway.secret not in text


def test_open_holds_are_counted_at_scrape_time(gateway):
    from billing.services import hold_place, hold_release

    hold_id = hold_place(org_id=gateway.org.id, amount_units=1234, reference="metrics-test")
    text = Client().get("/metrics").content.decode()
    assert _value(text, "modelgate_holds_open") == 1
    assert _value(text, "modelgate_holds_open_units") == 1234
    hold_release(hold_id=hold_id)
    text = Client().get("/metrics").content.decode()
    assert _value(text, "modelgate_holds_open") == 0


def test_multiprocess_mode_aggregates_every_uvicorn_worker(gateway, web_factory, tmp_path):
    """Two uvicorn workers with PROMETHEUS_MULTIPROC_DIR: /metrics (answered by either worker)
    counts the requests served by both."""
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    web = web_factory(workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "METRICS_TOKEN": "mp"})
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi [[sim tokens=3]]"}]}
    n = 12
    with httpx.Client(timeout=30) as client:  # a new connection each time spreads over workers
        for _ in range(n):
            response = client.post(
                web.url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {gateway.secret}", "Connection": "close"},
                json=body,
            )
            assert response.status_code == 200, response.text
    gateway.wait_settled(n)
    # One mmap file per worker that counted (the kernel decides how connections spread).
    assert list(metrics_dir.glob("counter_*.db"))
    for _ in range(4):  # whichever worker answers, the totals are the same
        text = httpx.get(web.url + "/metrics", headers={"Authorization": "Bearer mp"}, timeout=10).text
        labels = {"model": "gpt-4o", "format": "openai", "status": "ok", "plan": "standard"}
        assert _value(text, "modelgate_relay_requests_total", **labels) == n
        assert _value(text, "modelgate_holds_open") == 0
    web.terminate()
    web.wait(30)
