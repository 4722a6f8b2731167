"""Load with faults: a live gateway under SDK traffic while its database and Redis fail.

Everything runs in real processes: a private PostgreSQL cluster and a private redis-server
(``tests.faults.services``), the upstream simulator (``python -m inference.simulator``) and
the gateway (uvicorn, ``config.settings.production``). Load comes from the official
``openai`` and ``anthropic`` SDKs in threads — streams and non-streams, a share of them
carrying ``[[sim …]]`` fault directives — while the schedule restarts PostgreSQL, kills and
restarts Redis and flushes it. Every request is recorded with what its client saw and its
``x-request-id``, so the books can be checked request by request afterwards.

``run(seconds=…)`` returns a :class:`Run` with the client results, the books
(``tests.faults.remote check``) and the counts; ``tests/faults/test_load_with_faults.py``
asserts on it. Standalone (the long variant for ``make soak``)::

    MODELGATE_FAULT_SECONDS=600 python -m pytest tests/faults -k load_with_faults
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.faults.services import PrivatePostgres, PrivateRedis
from tests.live import free_port

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
UVICORN = str(Path(sys.executable).with_name("uvicorn"))

# Upstream faults, by the simulator directive that injects them, with their weight in the mix.
# "none" and "slow" are healthy requests ("slow" streams are in flight when an outage hits).
FAULTS: dict[str, tuple[str, int]] = {
    "none": ("tokens=24", 40),
    "slow": ("tokens=40 chunks=20 chunk_delay_ms=60", 14),
    "http_500": ("fault=500", 4),
    "http_529": ("fault=529", 2),
    "http_429": ("fault=429", 2),
    "timeout": ("fault=timeout timeout_s=4", 3),
    "reset": ("fault=disconnect_mid_stream tokens=40", 4),
    "error_mid_stream": ("fault=error_mid_stream tokens=40", 4),
    "malformed": ("fault=malformed_sse tokens=40", 3),
    "usage_missing": ("usage=missing", 2),
    "usage_zero": ("usage=zero", 2),
    "usage_negative": ("usage=negative", 2),
}
# (SDK, stream) combinations, equally likely; models answered by the simulator. Each SDK also
# calls a model of the other format (the relay translates requests, answers and streams).
SHAPES = [("openai", False), ("openai", True), ("anthropic", False), ("anthropic", True)]
OPENAI_MODELS = ["gpt-4o-mini", "gpt-4o", "claude-haiku-4-5"]
ANTHROPIC_MODELS = ["claude-haiku-4-5", "claude-haiku-4-5-20251001", "gpt-4o-mini"]


@dataclass
class Result:
    n: int
    sdk: str
    stream: bool
    model: str
    fault: str
    started: float
    ended: float = 0.0
    outcome: str = ""  # ok | http_error | stream_error | connection_error | bad_error_body
    status: int | None = None
    request_id: str | None = None
    error_type: str = ""  # the error's type/code as the client saw it
    detail: str = ""


@dataclass
class Phase:
    name: str
    started: float
    ended: float = 0.0


@dataclass
class Run:
    seconds: float
    results: list[Result]
    phases: list[Phase]
    books: dict
    setup: dict
    gateway_log: str
    gateway_restarted: bool
    faults_injected: Counter = field(default_factory=Counter)
    timings: dict = field(default_factory=dict)


def _wire_error_ok(sdk: str, status: int, headers, body) -> tuple[bool, str]:
    """Is this error body in the caller's wire format? Returns (ok, type/code)."""
    if "application/json" not in (headers.get("content-type") or ""):
        return False, f"content-type {headers.get('content-type')!r}"
    if not isinstance(body, dict):
        return False, "body is not a JSON object"
    if sdk == "openai":
        # the openai SDK hands over the "error" object itself
        error = body.get("error", body)
        ok = isinstance(error, dict) and {"message", "type", "code"} <= set(error)
        return ok, f"{error.get('type')}/{error.get('code')}" if ok else f"not OpenAI-shaped: {body}"
    error = body.get("error") if body.get("type") == "error" else None
    ok = isinstance(error, dict) and {"type", "message"} <= set(error)
    return ok, error.get("type") if ok else f"not Anthropic-shaped: {body}"


class Load:
    """``threads`` SDK clients sending requests back to back until stopped."""

    def __init__(self, base_url: str, secret: str, threads: int, seed: int) -> None:
        self.base_url, self.secret, self.threads, self.seed = base_url, secret, threads, seed
        self.results: list[Result] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._counter = iter(range(10**9))
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self.threads):
            thread = threading.Thread(target=self._work, args=(i,), name=f"load-{i}", daemon=True)
            thread.start()
            self._workers.append(thread)

    def stop(self, timeout: float = 60) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout)

    def _work(self, i: int) -> None:
        import anthropic
        import openai

        rng = random.Random(self.seed * 1000 + i)
        oai = openai.OpenAI(api_key=self.secret, base_url=self.base_url + "/v1", max_retries=0, timeout=60)
        claude = anthropic.Anthropic(api_key=self.secret, base_url=self.base_url, max_retries=0, timeout=60)
        names = list(FAULTS)
        weights = [FAULTS[name][1] for name in names]
        while not self._stop.is_set():
            with self._lock:
                n = next(self._counter)
            sdk, stream = rng.choice(SHAPES)
            fault = rng.choices(names, weights)[0]
            model = rng.choice(OPENAI_MODELS if sdk == "openai" else ANTHROPIC_MODELS)
            result = Result(n=n, sdk=sdk, stream=stream, model=model, fault=fault, started=time.monotonic())
            prompt = f"Request {n} from load thread {i}. [[sim {FAULTS[fault][0]}]]"
            try:
                if sdk == "openai":
                    self._openai(oai, result, prompt)
                else:
                    self._anthropic(claude, result, prompt)
            except Exception as exc:  # every failure is classified and counted
                self._classify(result, exc)
            result.ended = time.monotonic()
            with self._lock:
                self.results.append(result)
            if result.outcome != "ok" and result.status in (None, 429, 500, 502, 503, 529):
                time.sleep(0.2)  # a client backs off after an error (as the SDKs' retries would)

    def _openai(self, client, result: Result, prompt: str) -> None:
        messages = [{"role": "user", "content": prompt}]
        if not result.stream:
            raw = client.chat.completions.with_raw_response.create(
                model=result.model, messages=messages, max_tokens=200
            )
            result.status, result.request_id = raw.status_code, raw.headers.get("x-request-id")
            completion = raw.parse()
            if completion.choices and completion.choices[0].message.content:
                result.outcome = "ok"
            else:
                result.outcome, result.detail = "stream_error", "empty completion"
            return
        stream = client.chat.completions.create(
            model=result.model,
            messages=messages,
            max_tokens=200,
            stream=True,
            stream_options={"include_usage": True},
        )
        result.status, result.request_id = (
            stream.response.status_code,
            stream.response.headers.get("x-request-id"),
        )
        finished = False
        for chunk in stream:
            if chunk.choices and chunk.choices[0].finish_reason:
                finished = True
        result.outcome = "ok" if finished else "stream_error"
        if not finished:
            result.detail = "stream ended without finish_reason"

    def _anthropic(self, client, result: Result, prompt: str) -> None:
        messages = [{"role": "user", "content": prompt}]
        if not result.stream:
            raw = client.messages.with_raw_response.create(
                model=result.model, messages=messages, max_tokens=200
            )
            result.status, result.request_id = raw.status_code, raw.headers.get("x-request-id")
            message = raw.parse()
            result.outcome = "ok" if message.content and message.stop_reason else "stream_error"
            return
        stream = client.messages.create(model=result.model, messages=messages, max_tokens=200, stream=True)
        result.status, result.request_id = (
            stream.response.status_code,
            stream.response.headers.get("x-request-id"),
        )
        stopped = False
        for event in stream:
            if event.type == "message_stop":
                stopped = True
        result.outcome = "ok" if stopped else "stream_error"
        if not stopped:
            result.detail = "stream ended without message_stop"

    def _classify(self, result: Result, exc: Exception) -> None:
        import anthropic
        import openai

        status_errors = (openai.APIStatusError, anthropic.APIStatusError)
        connection_errors = (openai.APIConnectionError, anthropic.APIConnectionError, httpx.TransportError)
        if isinstance(exc, status_errors) and result.status is None:
            # An HTTP error before any body: must be JSON in the caller's format.
            result.status = exc.status_code
            result.request_id = exc.response.headers.get("x-request-id")
            ok, result.error_type = _wire_error_ok(
                result.sdk, exc.status_code, exc.response.headers, exc.body
            )
            result.outcome = "http_error" if ok else "bad_error_body"
            result.detail = str(exc)[:300]
        elif result.status is not None and isinstance(exc, (openai.APIError, anthropic.APIError)):
            # An error event inside a 200 stream (the SDKs raise it while iterating).
            result.outcome, result.detail = "stream_error", str(exc)[:300]
            result.error_type = type(exc).__name__
        elif isinstance(exc, connection_errors):
            result.outcome = "stream_error" if result.status is not None else "connection_error"
            result.detail = repr(exc)[:300]
        else:
            result.outcome, result.detail = "unexpected", repr(exc)[:500]


class Stack:
    """Private PostgreSQL + Redis, the simulator and the gateway, as subprocesses."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.pg = PrivatePostgres()
        self.redis = PrivateRedis(workdir / "redis")
        self.procs: list[subprocess.Popen] = []
        self.sim_url = ""
        self.gateway: subprocess.Popen | None = None
        self.gateway_url = ""
        self.gateway_log = workdir / "gateway.log"

    def env(self) -> dict[str, str]:
        from cryptography.fernet import Fernet

        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABASE_", "REDIS_", "CELERY_", "RELAY_", "BILLING_", "DJANGO_"))
        }
        env.update(
            {
                "PYTHONPATH": str(ROOT),
                "DJANGO_SETTINGS_MODULE": "config.settings.production",
                "DJANGO_SECRET_KEY": "fault-test-" + "x" * 50,
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
                "DJANGO_SECURE_SSL_REDIRECT": "0",
                "FIELD_ENCRYPTION_KEY": getattr(self, "_fernet", None) or Fernet.generate_key().decode(),
                "DATABASE_URL": self.pg.url(),
                "REDIS_URL": self.redis.url(0),
                "CELERY_BROKER_URL": self.redis.url(1),
                "CELERY_RESULT_BACKEND": self.redis.url(2),
                "MODELGATE_DATA_DIR": str(self.workdir / "data"),
                "MODELGATE_SIMULATOR_URL": self.sim_url,
                "LOG_FORMAT": "json",
                # An upstream that does not answer within 1.5 s has timed out (fault=timeout sleeps 4 s).
                "RELAY_UPSTREAM_READ_TIMEOUT": "1.5",
                # Holds a crashed or cut-off request leaves behind are the expiry task's after 20 s.
                "BILLING_HOLD_TTL_SECONDS": "20",
                # A settlement that meets an outage is retried for 6 s, then given up (the hold is
                # left to the expiry task); the load's PostgreSQL outages last PG_DOWN_SECONDS.
                "RELAY_SETTLE_RETRY_SECONDS": "6",
            }
        )
        self._fernet = env["FIELD_ENCRYPTION_KEY"]
        return env

    def start(self) -> dict:
        self.pg.init()
        self.pg.start()
        self.pg.createdb("modelgate")
        self.redis.start()
        sim_port = free_port()
        self.sim_url = f"http://127.0.0.1:{sim_port}"
        sim_log = (self.workdir / "simulator.log").open("wb")
        self.procs.append(
            subprocess.Popen(
                [PYTHON, "-m", "inference.simulator", "--port", str(sim_port)],
                cwd=ROOT,
                env=self.env(),
                stdout=sim_log,
                stderr=subprocess.STDOUT,
            )
        )
        setup = self.remote("setup")
        _wait_http(self.sim_url + "/health", self.procs[0], self.workdir / "simulator.log")
        port = free_port()
        log = self.gateway_log.open("wb")
        self.gateway = subprocess.Popen(
            [
                UVICORN,
                "config.asgi:application",
                "--host=127.0.0.1",
                f"--port={port}",
                "--workers=1",
                "--no-access-log",
                "--timeout-graceful-shutdown=10",
            ],
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(self.gateway)
        self.gateway_url = f"http://127.0.0.1:{port}"
        _wait_http(self.gateway_url + "/healthz", self.gateway, self.gateway_log)
        return setup

    def remote(self, *args: str, timeout: float = 180) -> dict:
        done = subprocess.run(
            [PYTHON, "-m", "tests.faults.remote", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        marker = "@@RESULT@@"
        if done.returncode or marker not in done.stdout:
            raise RuntimeError(f"remote {args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return json.loads(done.stdout.rsplit(marker, 1)[1])

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        with contextlib.suppress(Exception):
            self.redis.destroy()
        with contextlib.suppress(Exception):
            self.pg.destroy()


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up:\n{log.read_text()[-5000:]}")
        time.sleep(0.1)


def schedule(seconds: float) -> list[tuple[float, str]]:
    """When each fault hits, in seconds from the start of the load: one cycle (PostgreSQL
    restart, Redis stopped then started, Redis flushed) per 30 s, the first after 4 s."""
    cycles = max(1, int(seconds // 30))
    span = seconds / cycles
    plan = []
    for c in range(cycles):
        base = c * span
        plan += [
            (base + 0.15 * span, "postgres_restart"),
            (base + 0.45 * span, "redis_stop"),
            (base + 0.72 * span, "redis_flushall"),
        ]
    return plan


PG_DOWN_SECONDS = 3.0
REDIS_DOWN_SECONDS = 4.0


def run(seconds: float = 36.0, threads: int = 6, seed: int = 9) -> Run:
    workdir = Path(tempfile.mkdtemp(prefix="mg-fault-"))
    stack = Stack(workdir)
    phases: list[Phase] = []
    injected: Counter = Counter()
    timings: dict = {}
    try:
        t0 = time.monotonic()
        setup = stack.start()
        timings["setup_s"] = round(time.monotonic() - t0, 1)
        gateway_pid = stack.gateway.pid
        load = Load(stack.gateway_url, setup["secret"], threads=threads, seed=seed)
        start = time.monotonic()
        load.start()
        for at, fault in schedule(seconds):
            time.sleep(max(0.0, start + at - time.monotonic()))
            phase = Phase(fault, time.monotonic())
            if fault == "postgres_restart":
                stack.pg.stop()
                time.sleep(PG_DOWN_SECONDS)
                stack.pg.start()
            elif fault == "redis_stop":
                stack.redis.kill()
                time.sleep(REDIS_DOWN_SECONDS)
                stack.redis.start()
            elif fault == "redis_flushall":
                stack.redis.flushall()
            phase.ended = time.monotonic()
            phases.append(phase)
            injected[fault] += 1
        time.sleep(max(0.0, start + seconds - time.monotonic()))
        load.stop()
        timings["load_s"] = round(time.monotonic() - start, 1)
        # Streams settle in the gateway after their clients finished: give the pumps a moment.
        time.sleep(1.0)
        t1 = time.monotonic()
        books = stack.remote("check", str(setup["org_id"]), "30")
        timings["check_s"] = round(time.monotonic() - t1, 1)
        restarted = stack.gateway.poll() is not None or stack.gateway.pid != gateway_pid
        for result in load.results:
            if result.fault not in ("none", "slow"):
                injected[result.fault] += 1
        return Run(
            seconds=seconds,
            results=load.results,
            phases=phases,
            books=books,
            setup=setup,
            gateway_log=stack.gateway_log.read_text(),
            gateway_restarted=restarted,
            faults_injected=injected,
            timings=timings,
        )
    finally:
        stack.stop()
        if os.environ.get("MODELGATE_FAULT_KEEP") != "1":  # keep the logs: MODELGATE_FAULT_KEEP=1
            shutil.rmtree(workdir, ignore_errors=True)
