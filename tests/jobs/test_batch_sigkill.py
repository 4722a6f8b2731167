"""kill -9 a worker mid-batch, start another: every line ends with exactly one result and one charge."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter

import pytest
from django.core.management import call_command
from django.utils import timezone
from openai import OpenAI

from billing.models import Hold, LedgerEntry
from billing.services import holds_expire
from inference.models import BatchLine, UsageRecord

from .helpers import chat_line, jsonl, read_jsonl, wait_batch

pytestmark = pytest.mark.django_db(transaction=True)

LINES = 160


def test_sigkill_mid_batch_loses_no_line_and_charges_none_twice(gateway, workers):
    first = workers.start()
    client = OpenAI(api_key=gateway.secret, base_url=gateway.openai_base, max_retries=0)
    before = gateway.balance()
    lines = [chat_line(i, text=f"[[sim latency_ms=200]] question {i}") for i in range(LINES)]
    uploaded = client.files.create(file=("kill.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )

    deadline = time.monotonic() + 60
    while BatchLine.objects.filter(batch__public_id=batch.id).exclude(status="pending").count() < 20:
        assert time.monotonic() < deadline, "the batch did not start"
        time.sleep(0.02)
    time.sleep(0.1)  # lines in flight: holds placed, upstream answering
    workers.kill(first)
    done_at_kill = BatchLine.objects.filter(batch__public_id=batch.id).exclude(status="pending").count()
    assert done_at_kill < LINES, "killed too late to test anything"
    assert client.batches.retrieve(batch.id).status == "in_progress"

    # A new worker with beat: the resume sweeper finds the batch's lease run out and restarts it.
    workers.start(beat=True)
    done = wait_batch(client, batch.id, timeout=90)
    assert done.status == "completed"
    assert done.request_counts.completed == LINES
    assert done.request_counts.failed == 0

    output = read_jsonl(client, done.output_file_id)
    assert Counter(o["custom_id"] for o in output) == Counter(f"req-{i}" for i in range(LINES))

    request_ids = [f"{batch.id}_{n}" for n in range(1, LINES + 1)]
    records = Counter(
        UsageRecord.objects.filter(request_id__startswith=batch.id + "_").values_list("request_id", flat=True)
    )
    assert records == Counter(request_ids)  # exactly one usage record per line
    usage_keys = Counter(
        LedgerEntry.objects.filter(idempotency_key__startswith=f"usage:{batch.id}_").values_list(
            "idempotency_key", flat=True
        )
    )
    assert usage_keys == Counter(f"usage:{r}" for r in request_ids)  # exactly one charge per line
    charged = sum(
        UsageRecord.objects.filter(request_id__startswith=batch.id + "_").values_list("cost_units", flat=True)
    )
    assert before - gateway.balance() == charged
    for line in BatchLine.objects.filter(batch__public_id=batch.id):
        assert line.status == "succeeded"
        assert line.usage_record_id is not None

    # Lines killed between hold and settlement ran again under the same request id; their first
    # holds are still open (the hold-expiry task gives them back) and the ledger is consistent.
    holds = Hold.objects.filter(reference__startswith=batch.id + "_")
    orphans = holds.filter(status="open")
    assert holds.count() == LINES + orphans.count()
    print(f"\nkilled with {done_at_kill}/{LINES} lines done; {orphans.count()} orphaned holds")
    call_command("billing_audit")
    holds_expire(now=timezone.now() + dt.timedelta(days=1))
    assert not holds.filter(status="open").exists()
    assert before - gateway.balance() == charged
    call_command("billing_audit")
