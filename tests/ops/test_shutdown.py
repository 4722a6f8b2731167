"""Graceful shutdown, proven on a real uvicorn process: SIGTERM mid-stream settles every hold.

The gateway runs as a subprocess (the Procfile's uvicorn command) against the test database,
in front of the in-process upstream simulator. The ledger audit of tests/conftest.py runs
after each test (billing_audit clean).
"""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

pytestmark = pytest.mark.django_db(transaction=True)

SLOW = "Tell me a story [[sim chunks=40 chunk_delay_ms=50]]"


@pytest.fixture
def web_process(gateway, web_factory):
    return web_factory()


def _stream_request(url: str, secret: str):
    return httpx.stream(
        "POST",
        url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {secret}"},
        json={
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": SLOW}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        timeout=60,
    )


def _assert_clean_exit(proc, timeout: float) -> None:
    # uvicorn re-raises the signal after its graceful shutdown: the exit status is -SIGTERM.
    assert proc.wait(timeout) in (0, -signal.SIGTERM), proc.log_path.read_text()
    log = proc.log_path.read_text()
    assert "Application shutdown complete" in log, log
    assert "did not settle" not in log


def _open_holds(org_id: int) -> int:
    from billing.models import Hold, HoldStatus

    return Hold.objects.filter(account__organization_id=org_id, status=HoldStatus.OPEN).count()


def test_sigterm_mid_stream_lets_the_stream_finish_and_settles(gateway, web_process):
    received: list[str] = []
    first = threading.Event()

    def client():
        with _stream_request(web_process.url, gateway.secret) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data:"):
                    received.append(line)
                    first.set()

    thread = threading.Thread(target=client)
    thread.start()
    assert first.wait(20), web_process.log_path.read_text()
    web_process.send_signal(signal.SIGTERM)
    thread.join(30)
    assert not thread.is_alive()
    _assert_clean_exit(web_process, 30)

    assert received[-1] == "data: [DONE]"  # the client saw the whole stream
    assert len(received) > 40
    (record,) = gateway.records()
    assert record.status == "ok"
    assert record.cost_units > 0
    assert _open_holds(gateway.org.id) == 0
    assert gateway.balance() == 5_000_000_000 - record.cost_units


def test_sigterm_after_client_left_waits_for_the_pump_to_settle(gateway, web_process):
    """No connection is in flight any more — only the pump draining the upstream: the ASGI
    lifespan shutdown must wait for it, or the hold would be left to the expiry task."""
    with _stream_request(web_process.url, gateway.secret) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data:"):
                break  # leave after the first chunk: the pump keeps draining the upstream
    time.sleep(0.2)
    assert _open_holds(gateway.org.id) == 1  # still streaming upstream (40 × 50 ms)
    web_process.send_signal(signal.SIGTERM)
    _assert_clean_exit(web_process, 40)

    (record,) = gateway.records()
    assert record.status == "client_disconnected"
    assert record.output_tokens > 0
    assert record.cost_units > 0  # charged for what the upstream produced
    assert _open_holds(gateway.org.id) == 0
    assert gateway.balance() == 5_000_000_000 - record.cost_units
    assert "stream(s) to settle" in web_process.log_path.read_text()
