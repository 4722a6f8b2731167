"""A real worker process (prefork pool) runs a batch and a compare job; its own /metrics shows them."""

from __future__ import annotations

import time

import httpx
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from tests.live import free_port

from .helpers import chat_line, jsonl, wait_batch

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "worker-metrics-test-token"


def samples(text: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(port: int, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=10)


def test_worker_exports_its_job_outcomes(gateway, workers, tmp_path):
    port = free_port()
    multiproc = tmp_path / "prom-worker"
    multiproc.mkdir()
    workers.start(
        concurrency=2,
        WORKER_METRICS_PORT=str(port),
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
        METRICS_TOKEN=TOKEN,
        BATCH_CHUNK_SIZE="4",
    )
    assert scrape(port, token=None).status_code == 403
    assert scrape(port, token="wrong").status_code == 403
    before = samples(scrape(port).text)
    assert value(before, "modelgate_batch_lines_total", outcome="succeeded") == 0

    client = OpenAI(api_key=gateway.secret, base_url=gateway.openai_base, max_retries=0)
    lines = [chat_line(i) for i in range(10)] + [
        chat_line(10 + i, text="[[sim fault=400]] refused upstream") for i in range(2)
    ]
    uploaded = client.files.create(file=("m.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = wait_batch(client, batch.id, timeout=60)
    assert done.status == "completed"
    assert (done.request_counts.completed, done.request_counts.failed) == (10, 2)

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {gateway.secret}")
    r = api.post(
        "/api/compare", {"prompt": "Hi", "models": ["gpt-4o-mini", "claude-haiku-4-5"]}, format="json"
    )
    assert r.status_code == 202, r.content
    deadline = time.monotonic() + 30
    while api.get(f"/api/compare/{r.json()['id']}").json()["status"] != "completed":
        assert time.monotonic() < deadline, "the compare job did not finish"
        time.sleep(0.1)

    # The batch ran in the pool's child processes; the main process's endpoint aggregates them.
    found = samples(scrape(port).text)
    assert value(found, "modelgate_batch_lines_total", outcome="succeeded") == 10
    assert value(found, "modelgate_batch_lines_total", outcome="failed") == 2
    assert value(found, "modelgate_batches_finished_total", status="completed") == 1
    assert value(found, "modelgate_compare_results_total", outcome="succeeded") == 2
    runs = value(
        found, "modelgate_celery_tasks_total", task="inference.tasks.batch_run_task", state="SUCCESS"
    )
    assert runs >= 4  # 12 lines in chunks of 4, then the finalizing run
    assert (
        value(found, "modelgate_celery_task_duration_seconds_count", task="inference.tasks.batch_run_task")
        == runs
    )
    assert (
        value(
            found, "modelgate_celery_tasks_total", task="inference.tasks.batch_validate_task", state="SUCCESS"
        )
        == 1
    )
    relayed = sum(
        v
        for (name, labels), v in found.items()
        if name == "modelgate_relay_requests_total" and ("model", "gpt-4o-mini") in labels
    )
    assert relayed == 13  # 12 batch lines + the compare job's gpt-4o-mini
    assert ("modelgate_celery_queue_length", (("queue", "celery"),)) in found or not gateway_uses_redis()
    assert any(multiproc.iterdir())  # the children wrote their values there


def gateway_uses_redis() -> bool:
    from django.conf import settings

    return settings.CELERY_BROKER_URL.startswith("redis")


def test_prefork_worker_with_a_port_but_no_multiproc_dir_refuses_to_start(gateway, workers):
    with pytest.raises(AssertionError, match="PROMETHEUS_MULTIPROC_DIR"):
        workers.start(concurrency=1, WORKER_METRICS_PORT=str(free_port()))
