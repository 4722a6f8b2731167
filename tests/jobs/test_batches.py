"""The Batch API end to end: the openai SDK → /v1/files + /v1/batches → a real Celery worker → the relay."""

from __future__ import annotations

import time

import pytest
from django.core.management import call_command
from openai import ConflictError, NotFoundError, OpenAI

from billing.models import LedgerEntry
from inference.models import BatchLine, UsageRecord
from models_catalog.selectors import model_resolve, pricing_plan_multiplier

from .helpers import chat_line, chat_line_cost, jsonl, read_jsonl, wait_batch

pytestmark = pytest.mark.django_db(transaction=True)


def sdk(gateway, secret: str | None = None) -> OpenAI:
    return OpenAI(api_key=secret or gateway.secret, base_url=gateway.openai_base, max_retries=0)


def test_thousand_line_batch_is_charged_exactly_the_sum_of_batch_prices(gateway, worker):
    client = sdk(gateway)
    before = gateway.balance()
    lines = [chat_line(i) for i in range(1000)]
    started = time.monotonic()
    uploaded = client.files.create(file=("batch.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"purpose": "test"},
    )
    assert batch.status == "validating"
    assert batch.metadata == {"purpose": "test"}
    done = wait_batch(client, batch.id, timeout=120)
    elapsed = time.monotonic() - started
    assert done.status == "completed", done
    assert done.request_counts.total == 1000
    assert done.request_counts.completed == 1000
    assert done.request_counts.failed == 0
    assert done.error_file_id is None
    for stamp in ("in_progress_at", "finalizing_at", "completed_at"):
        assert getattr(done, stamp) is not None
    output = read_jsonl(client, done.output_file_id)
    assert sorted(o["custom_id"] for o in output) == sorted(f"req-{i}" for i in range(1000))

    model = model_resolve("gpt-4o-mini")
    price = model.price_at()
    assert price.batch_percent == 50  # the catalogue's batch discount applies
    multiplier = pricing_plan_multiplier(gateway.org.pricing_plan)
    expected = 0
    for item in output:
        assert item["error"] is None
        assert item["response"]["status_code"] == 200
        body = item["response"]["body"]
        assert body["choices"][0]["message"]["content"].startswith("Simulated reply from gpt-4o-mini")
        expected += chat_line_cost(body["usage"], price, price.batch_percent, multiplier)
    assert expected > 0
    assert before - gateway.balance() == expected
    records = UsageRecord.objects.filter(request_id__startswith=done.id + "_")
    assert records.count() == 1000
    assert sum(r.cost_units for r in records) == expected
    assert LedgerEntry.objects.filter(idempotency_key__startswith=f"usage:{done.id}_").count() == 1000
    call_command("billing_audit")  # raises CommandError on any problem
    print(f"\n1000-line batch: {elapsed:.1f}s")
    assert elapsed < 60


def test_invalid_lines_fail_the_batch_with_an_error_file_and_charge_nothing(gateway, worker):
    client = sdk(gateway)
    before = gateway.balance()
    lines = [
        chat_line(1),
        chat_line(1),  # duplicate custom_id
        {**chat_line(3), "url": "/v1/embeddings"},  # url != endpoint
        {**chat_line(4), "method": "GET"},
        chat_line(5, model="no-such-model"),
        {  # capability guard: an image to a model that cannot read images
            **chat_line(6, model="gpt-image-1"),
        },
        {"custom_id": "req-7", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o"}},
    ]
    raw = jsonl(lines) + b"this is not json\n"
    uploaded = client.files.create(file=("bad.jsonl", raw), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = wait_batch(client, batch.id)
    assert done.status == "failed"
    assert done.failed_at is not None
    errors = {e.line: e for e in done.errors.data}
    assert sorted(errors) == [2, 3, 4, 5, 6, 7, 8]
    assert errors[2].code == "duplicate_custom_id"
    assert errors[3].code == "mismatched_endpoint"
    assert errors[4].code == "invalid_method"
    assert errors[5].code == "model_not_found"
    assert errors[6].code == "model_capability_mismatch"
    assert errors[7].param == "body.messages"
    assert errors[8].code == "invalid_json_line"
    error_lines = read_jsonl(client, done.error_file_id)
    assert [e["error"]["line"] for e in error_lines] == [2, 3, 4, 5, 6, 7, 8]
    assert done.output_file_id is None
    assert gateway.balance() == before
    assert not BatchLine.objects.exists()


def test_cancel_stops_new_lines_and_keeps_finished_ones(gateway, worker):
    client = sdk(gateway)
    before = gateway.balance()
    lines = [chat_line(i, text=f"[[sim latency_ms=150]] slow question {i}") for i in range(120)]
    uploaded = client.files.create(file=("slow.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    deadline = time.monotonic() + 60
    while BatchLine.objects.filter(batch__public_id=batch.id, status="succeeded").count() < 5:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    done = wait_batch(client, batch.id)
    assert done.status == "cancelled"
    assert done.cancelled_at is not None
    assert done.cancelling_at is not None
    finished = done.request_counts.completed
    assert 5 <= finished < 120
    output = read_jsonl(client, done.output_file_id)
    assert len(output) == finished
    charged = sum(
        UsageRecord.objects.filter(request_id__startswith=batch.id + "_").values_list("cost_units", flat=True)
    )
    assert UsageRecord.objects.filter(request_id__startswith=batch.id + "_").count() == finished
    assert before - gateway.balance() == charged
    assert BatchLine.objects.filter(batch__public_id=batch.id, status="cancelled").count() == 120 - finished
    call_command("billing_audit")
    finished_batch = wait_batch(client, _completed_batch(client), timeout=60)
    assert finished_batch.status == "completed"
    with pytest.raises(ConflictError, match="Cannot cancel a batch with status 'completed'"):
        client.batches.cancel(finished_batch.id)


def _completed_batch(client) -> str:
    uploaded = client.files.create(file=("one.jsonl", jsonl([chat_line(0)])), purpose="batch")
    return client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    ).id


def test_running_out_of_balance_fails_the_remaining_lines_with_402(gateway, worker):
    from billing.services import credit_adjust

    client = sdk(gateway)
    # Each line writes exactly 1000 output tokens of gpt-4o at the batch price (≈ $0.005):
    # leave money for four lines.
    lines = [
        chat_line(i, model="gpt-4o", text=f"[[sim tokens=1000]] long answer {i}", max_tokens=1000)
        for i in range(10)
    ]
    one_line = chat_line_cost(
        {"prompt_tokens": 4 + len("[[sim tokens=1000]] long answer 0") // 4 + 1, "completion_tokens": 1000},
        model_resolve("gpt-4o").price_at(),
        50,
    )
    credit_adjust(
        org_id=gateway.org.id,
        amount_units=-(gateway.balance() - (4 * one_line + one_line // 2)),
        reason="leave a little",
        acting_user=gateway.owner.user,
    )
    uploaded = client.files.create(file=("big.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = wait_batch(client, batch.id)
    assert done.status == "completed"
    assert done.request_counts.completed == 4
    assert done.request_counts.failed == 6
    errors = read_jsonl(client, done.error_file_id)
    assert len(errors) == 6
    for item in errors:
        assert item["response"]["status_code"] == 402
        assert item["response"]["body"]["error"]["code"] == "insufficient_quota"
        assert "Insufficient balance" in item["response"]["body"]["error"]["message"]
    assert gateway.balance() >= 0
    call_command("billing_audit")


def test_files_and_batches_are_isolated_per_organization(gateway, make_org):
    from accounts.services import api_key_create

    client = sdk(gateway)
    uploaded = client.files.create(file=("a.jsonl", jsonl([chat_line(0)])), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    other = make_org(name="Other")
    _key, secret = api_key_create(actor=other, name="other")
    intruder = sdk(gateway, secret)
    with pytest.raises(NotFoundError):
        intruder.files.retrieve(uploaded.id)
    with pytest.raises(NotFoundError):
        intruder.files.content(uploaded.id)
    with pytest.raises(NotFoundError):
        intruder.files.delete(uploaded.id)
    with pytest.raises(NotFoundError):
        intruder.batches.retrieve(batch.id)
    with pytest.raises(NotFoundError):
        intruder.batches.cancel(batch.id)
    with pytest.raises(NotFoundError):
        intruder.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert [f.id for f in intruder.files.list()] == []
    assert [b.id for b in intruder.batches.list()] == []
    assert [b.id for b in client.batches.list()] == [batch.id]
    assert client.files.retrieve(uploaded.id).id == uploaded.id
