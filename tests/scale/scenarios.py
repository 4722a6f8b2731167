"""The multi-node scenarios, driven by real clients (httpx, the openai SDK) over both web nodes.

Each returns a dict of measured figures and asserts what it proves. The driver (this process)
sets up organizations and keys through the services and reads the books through the ORM, on the
same PostgreSQL the nodes use.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import uuid
from collections import Counter

import httpx
from openai import OpenAI

from .cluster import WEB_NODES, WORKER_NODES, Cluster

CHAT = "/v1/chat/completions"


# --- setup --------------------------------------------------------------------------------------


def org_with_key(*, name: str, credit_units: int, rpm_limit: int | None = None):
    """A funded organization and an API key: (org, key, secret)."""
    from accounts.models import Membership
    from accounts.services import api_key_create, organization_create, user_create
    from billing.services import credit_adjust

    user = user_create(email=f"scale-{uuid.uuid4().hex[:10]}@example.com")
    org = organization_create(owner=user, name=name)
    owner = Membership.objects.select_related("organization", "user").get(organization=org, user=user)
    if credit_units:
        credit_adjust(org_id=org.pk, amount_units=credit_units, reason="scale test", acting_user=user)
    key, secret = api_key_create(actor=owner, name=name, rpm_limit=rpm_limit)
    return org, key, secret


def catalogue_seeded() -> None:
    """The models, before the nodes start: a web node is ready only with a catalogue (/readyz),
    and a transactional test that ran earlier may have emptied the tables."""
    from models_catalog.models import AiModel
    from models_catalog.services import catalogue_changed, catalogue_seed

    if not AiModel.objects.exists():
        catalogue_seed()
    catalogue_changed()


def catalogue_ready(simulator_url: str) -> None:
    from models_catalog.services import catalogue_changed, channels_sync_simulator

    catalogue_seeded()
    channels_sync_simulator(base_url=simulator_url)
    catalogue_changed()


def balance(org_id: int) -> int:
    from billing.services import billing_account_for_org

    return billing_account_for_org(org_id=org_id).balance_units


def open_holds(org_id: int):
    from billing.models import Hold, HoldStatus

    return Hold.objects.filter(account__organization_id=org_id, status=HoldStatus.OPEN)


def audit_clean() -> None:
    from django.core.management import call_command

    from billing.selectors import ledger_audit

    problems = ledger_audit()
    assert problems == [], problems
    call_command("billing_audit", verbosity=0)


def books(org_id: int) -> dict:
    """Σ usage records == Σ usage charges, one charge per record (by request id)."""
    from billing.models import LedgerEntry
    from inference.models import UsageRecord

    records = dict(UsageRecord.objects.filter(organization_id=org_id).values_list("request_id", "cost_units"))
    charges = Counter()
    charged = 0
    for key, amount in LedgerEntry.objects.filter(account__organization_id=org_id, kind="usage").values_list(
        "idempotency_key", "amount_units"
    ):
        charges[key.removeprefix("usage:")] += 1
        charged -= amount
    assert max(charges.values(), default=1) == 1, "a request charged twice"
    assert set(charges) == {r for r, cost in records.items() if cost}, "usage records and charges differ"
    assert charged == sum(records.values()), (charged, sum(records.values()))
    return {"records": len(records), "charged_units": charged}


def body(text: str, *, max_tokens: int = 16, stream: bool = False, model: str = "gpt-4o-mini") -> dict:
    out = {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": text}]}
    if stream:
        out |= {"stream": True, "stream_options": {"include_usage": True}}
    return out


async def _post(client: httpx.AsyncClient, url: str, secret: str, payload: dict) -> tuple[int, str, str]:
    """(status, request id, error) — status 0 when the node died under the request."""
    headers = {"Authorization": f"Bearer {secret}"}
    try:
        if payload.get("stream"):
            async with client.stream("POST", url + CHAT, headers=headers, json=payload) as r:
                lines = [line async for line in r.aiter_lines()]
                done = r.status_code != 200 or "data: [DONE]" in lines
                return (
                    (r.status_code if done else 0),
                    r.headers.get("x-request-id", ""),
                    "" if done else "cut",
                )
        r = await client.post(url + CHAT, headers=headers, json=payload)
        return r.status_code, r.headers.get("x-request-id", ""), r.headers.get("retry-after", "")
    except httpx.HTTPError as exc:
        return 0, "", type(exc).__name__


def _burst(
    urls: list[str], secret: str, payloads: list[dict], stagger: float = 0.01
) -> list[tuple[str, int, str, str]]:
    """All requests concurrently, round-robin over the web nodes, started ``stagger`` seconds
    apart so both nodes see early ones: [(node url, status, request id, extra)]."""

    async def one(client, i, url, payload):
        await asyncio.sleep(i * stagger)
        return await _post(client, url, secret, payload)

    async def run():
        limits = httpx.Limits(max_connections=len(payloads) + 10)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            targets = list(zip(itertools.cycle(urls), payloads, strict=False))
            results = await asyncio.gather(*(one(client, i, u, p) for i, (u, p) in enumerate(targets)))
            return [(u, *res) for (u, _), res in zip(targets, results, strict=True)]

    return asyncio.run(run())


def _per_node(cluster: Cluster, results, status: int) -> dict[str, int]:
    names = {cluster.nodes[n].url: n for n in WEB_NODES}
    counts = Counter(names[u] for u, s, *_ in results if s == status)
    return {n: counts.get(n, 0) for n in WEB_NODES}


def warm_up(cluster: Cluster) -> None:
    """One request per web node first (key lookup, catalogue, upstream connection)."""
    _org, _key, secret = org_with_key(name="scale warm-up", credit_units=1_000_000_000)
    results = _burst(cluster.web_urls(), secret, [body("warm-up") for _ in WEB_NODES])
    assert [s for _, s, *_ in results] == [200] * len(WEB_NODES), results


def _avoid_window_edge(seconds: float) -> None:
    """Rate-limit windows are whole minutes: don't let a burst straddle a boundary."""
    left = 60 - time.time() % 60
    if left < seconds:
        time.sleep(left + 0.2)


# --- (a) per-key RPM across nodes -------------------------------------------------------------------


def scenario_rpm(cluster: Cluster, *, rpm: int) -> dict:
    org, _key, secret = org_with_key(name="scale rpm", credit_units=1_000_000_000, rpm_limit=rpm)
    _avoid_window_edge(12)
    started = time.monotonic()
    results = _burst(cluster.web_urls(), secret, [body(f"rpm {i}") for i in range(3 * rpm)])
    took = time.monotonic() - started
    statuses = Counter(s for _, s, *_ in results)
    ok, refused = _per_node(cluster, results, 200), _per_node(cluster, results, 429)
    # 1.5 × the limit reached each node: a per-node limiter would have admitted 2 × the limit.
    assert statuses == Counter({200: rpm, 429: 2 * rpm}), statuses
    assert all(refused.values()), f"a node refused nothing: {refused}"
    assert all(extra.isdigit() and int(extra) >= 1 for _, s, _, extra in results if s == 429), "Retry-After"
    assert books(org.pk)["records"] == rpm
    return {
        "rpm_limit": rpm,
        "sent": 3 * rpm,
        "admitted_per_node": ok,
        "refused_429_per_node": refused,
        "seconds": round(took, 2),
    }


# --- (b) holds: no overdraft across nodes -------------------------------------------------------------


HOLD_TEXT = "[[sim tokens=256 latency_ms=700]] hold test"


def _probe_cost(cluster: Cluster) -> tuple[int, int]:
    """One request: what it holds and what it costs (the simulator is deterministic)."""
    from billing.models import Hold
    from inference.models import UsageRecord

    _org, _key, secret = org_with_key(name="scale probe", credit_units=1_000_000_000)
    ((_, status, rid, _),) = _burst(cluster.web_urls()[:1], secret, [body(HOLD_TEXT, max_tokens=256)])
    assert status == 200
    hold = Hold.objects.get(reference=rid)
    return hold.amount_units, UsageRecord.objects.get(request_id=rid).cost_units


def scenario_holds(cluster: Cluster, *, k: int) -> dict:
    hold, cost = _probe_cost(cluster)
    assert 0 < cost <= hold, (hold, cost)
    assert k * (hold - cost) < hold, (hold, cost, k)  # then exactly K fit, whatever the timing
    org, _key, secret = org_with_key(name="scale holds", credit_units=k * hold)
    samples: list[int] = []
    stop = threading.Event()

    def watch():  # available = balance − held, sampled from PostgreSQL while the burst runs
        from django.db import connection

        from billing.models import BillingAccount

        try:
            while not stop.is_set():
                acct = BillingAccount.objects.get(organization_id=org.pk)
                held = sum(open_holds(org.pk).values_list("amount_units", flat=True))
                samples.append(min(acct.balance_units, acct.balance_units - held))
                time.sleep(0.03)
        finally:
            connection.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        results = _burst(
            cluster.web_urls(),
            secret,
            [body(HOLD_TEXT, max_tokens=256, stream=i % 2 == 1) for i in range(3 * k)],
        )
    finally:
        stop.set()
        watcher.join()
    statuses = Counter(s for _, s, *_ in results)
    assert statuses == Counter({200: k, 402: 2 * k}), statuses
    ok, refused = _per_node(cluster, results, 200), _per_node(cluster, results, 402)
    assert all(refused.values()), f"a node refused nothing: {refused}"
    deadline = time.monotonic() + 10
    while open_holds(org.pk).exists():  # streams settle just after their last event
        assert time.monotonic() < deadline, "holds left open"
        time.sleep(0.05)
    b = books(org.pk)
    assert b["records"] == k
    assert b["charged_units"] == k * cost
    assert balance(org.pk) == k * (hold - cost) >= 0
    assert min(samples) >= 0, min(samples)
    audit_clean()
    return {
        "funded_for": k,
        "hold_units": hold,
        "cost_units": cost,
        "sent": 3 * k,
        "admitted_per_node": ok,
        "refused_402_per_node": refused,
        "charged": b["records"],
        "min_available_units_seen": min(samples),
        "samples": len(samples),
        "balance_after_units": balance(org.pk),
    }


# --- (c) a batch over both worker nodes ---------------------------------------------------------------


def _lines(n: int, text: str) -> bytes:
    return "".join(
        json.dumps(
            {
                "custom_id": f"req-{i}",
                "method": "POST",
                "url": CHAT,
                "body": body(f"{text} {i}", max_tokens=8),
            }
        )
        + "\n"
        for i in range(n)
    ).encode()


def _batch_lines_done(cluster: Cluster, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    if not cluster.nodes[name].alive():
        return float("nan")
    for family in text_string_to_metric_families(cluster.worker_metrics(name)):
        for s in family.samples:
            if s.name == "modelgate_batch_lines_total" and s.labels.get("outcome") == "succeeded":
                return s.value
    return 0.0


def _submit_batch(cluster: Cluster, secret: str, n: int, text: str) -> tuple[OpenAI, str]:
    """Upload through one web node, create the batch through the other."""
    urls = cluster.web_urls()
    uploader = OpenAI(api_key=secret, base_url=urls[0] + "/v1", max_retries=0)
    creator = OpenAI(api_key=secret, base_url=urls[-1] + "/v1", max_retries=0)
    uploaded = uploader.files.create(file=("scale.jsonl", _lines(n, text)), purpose="batch")
    batch = creator.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
    return uploader, batch.id


def _wait_batch(client: OpenAI, batch_id: str, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} still {batch.status} after {timeout}s")


def _batch_books(client: OpenAI, batch_id: str, n: int) -> None:
    """Every line exactly one result, one usage record, one charge."""
    from billing.models import LedgerEntry
    from inference.models import BatchLine, UsageRecord

    output = [
        json.loads(x)
        for x in client.files.content(client.batches.retrieve(batch_id).output_file_id).text.splitlines()
        if x.strip()
    ]
    assert Counter(o["custom_id"] for o in output) == Counter(f"req-{i}" for i in range(n))
    rids = [f"{batch_id}_{i}" for i in range(1, n + 1)]
    records = Counter(
        UsageRecord.objects.filter(request_id__startswith=batch_id + "_").values_list("request_id", flat=True)
    )
    assert records == Counter(rids)
    keys = Counter(
        LedgerEntry.objects.filter(idempotency_key__startswith=f"usage:{batch_id}_").values_list(
            "idempotency_key", flat=True
        )
    )
    assert keys == Counter(f"usage:{r}" for r in rids)
    assert not BatchLine.objects.filter(batch__public_id=batch_id).exclude(status="succeeded").exists()


def scenario_batch(cluster: Cluster, *, lines: int) -> dict:
    org, _key, secret = org_with_key(name="scale batch", credit_units=5_000_000_000)
    before = {n: _batch_lines_done(cluster, n) for n in WORKER_NODES}
    started = time.monotonic()
    client, batch_id = _submit_batch(cluster, secret, lines, "[[sim latency_ms=150]] batch line")
    done = _wait_batch(client, batch_id, timeout=120)
    took = time.monotonic() - started
    assert done.status == "completed", done
    assert done.request_counts.completed == lines, done
    per_worker = {
        cluster.nodes[n].hostname: int(_batch_lines_done(cluster, n) - before[n]) for n in WORKER_NODES
    }
    assert sum(per_worker.values()) == lines, per_worker
    assert all(per_worker.values()), f"one worker ran no line: {per_worker}"
    _batch_books(client, batch_id, lines)
    books(org.pk)
    return {"lines": lines, "lines_per_worker": per_worker, "seconds": round(took, 2)}


# --- (d) kill a web node and a worker node mid-load -----------------------------------------------------


def _worker_running_chunk(cluster: Cluster, name: str, timeout: float) -> bool:
    from config.celery import app

    hostname = cluster.nodes[name].hostname
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        active = app.control.inspect(destination=[hostname], timeout=0.5).active() or {}
        if any(t.get("name") == "inference.tasks.batch_run_task" for t in active.get(hostname, [])):
            return True
    return False


def scenario_kill(
    cluster: Cluster, *, lines: int, load_seconds: float, clients: int, hold_ttl: float
) -> dict:
    from inference.models import BatchLine

    org, _key, secret = org_with_key(name="scale kill", credit_units=50_000_000_000)
    start_balance = balance(org.pk)
    client, batch_id = _submit_batch(cluster, secret, lines, "[[sim latency_ms=250]] kill line")
    results: list[tuple[str, int, str, str]] = []
    stop = threading.Event()
    urls_lock = threading.Lock()
    urls = cluster.web_urls()

    def load():
        async def one_client(c: int):
            async with httpx.AsyncClient(timeout=30) as http:
                for i in itertools.count():
                    if stop.is_set():
                        return
                    with urls_lock:
                        url = urls[(c + i) % len(urls)]
                    payload = body(
                        f"[[sim latency_ms=400 chunks=8 chunk_delay_ms=60]] load {c}-{i}", stream=i % 3 == 0
                    )
                    results.append((url, *await _post(http, url, secret, payload)))

        async def run():
            await asyncio.gather(*(one_client(c) for c in range(clients)))

        asyncio.run(run())

    loader = threading.Thread(target=load)
    loader.start()
    try:
        deadline = time.monotonic() + 60
        while (
            BatchLine.objects.filter(batch__public_id=batch_id).exclude(status="pending").count() < lines // 5
        ):
            assert time.monotonic() < deadline, "the batch did not start"
            time.sleep(0.05)
        while min(_per_node(cluster, list(results), 200).values()) < 3:  # both nodes under load
            assert time.monotonic() < deadline, "the load did not reach both web nodes"
            time.sleep(0.05)
        assert _worker_running_chunk(cluster, "wk1", 30), "wk1 never ran a chunk"
        answered_before_kill = _per_node(cluster, list(results), 200)
        killed_at = time.monotonic()
        cluster.kill("web2")
        cluster.kill("wk1")
        with urls_lock:
            urls[:] = cluster.web_urls()  # the load balancer takes the dead node out
        lines_done_at_kill = (
            BatchLine.objects.filter(batch__public_id=batch_id).exclude(status="pending").count()
        )
        time.sleep(max(0.0, load_seconds - (time.monotonic() - killed_at)))
    finally:
        stop.set()
        loader.join(60)
    assert lines_done_at_kill < lines, "killed too late"

    done = _wait_batch(client, batch_id, timeout=120)
    assert done.status == "completed", done
    assert done.request_counts.completed == lines, done
    recovered_after = time.monotonic() - killed_at
    _batch_books(client, batch_id, lines)

    # Holds of requests cut off on the dead node are given back by the expiry task (beat on wk2).
    deadline = time.monotonic() + hold_ttl + 30
    while open_holds(org.pk).exists():
        assert time.monotonic() < deadline, f"{open_holds(org.pk).count()} holds never expired"
        time.sleep(0.25)

    from billing.models import Hold
    from inference.models import UsageRecord

    web2 = cluster.nodes["web2"].url
    ok = [r for r in results if r[1] == 200]
    cut = [r for r in results if r[1] == 0]
    assert cut, "no request was in flight on the killed web node"
    assert all(u == web2 for u, *_ in cut), "only the killed node may drop requests"
    assert Counter(s for _, s, *_ in results) - Counter({200: len(ok), 0: len(cut)}) == Counter()
    recorded = set(UsageRecord.objects.filter(organization_id=org.pk).values_list("request_id", flat=True))
    assert {rid for _, _, rid, _ in ok} <= recorded, "an answered request was not charged"
    b = books(org.pk)
    assert start_balance - balance(org.pk) == b["charged_units"]
    audit_clean()
    return {
        "clients": clients,
        "answered_before_kill_per_node": answered_before_kill,
        "answered_in_total_per_node": _per_node(cluster, results, 200),
        "requests_cut_by_kill": len(cut),
        "batch_lines": lines,
        "lines_done_at_kill": lines_done_at_kill,
        "holds_expired": Hold.objects.filter(account__organization_id=org.pk, status="expired").count(),
        "batch_completed_seconds_after_kill": round(recovered_after, 1),
        "usage_records": b["records"],
        "charged_units": b["charged_units"],
    }
