"""`make bench`: gateway overhead, throughput, streams and ledger rate — A (upstream), B (Modelgate), C (LiteLLM).

Everything listens on 127.0.0.1; every process started here is stopped in ``finally`` (own process
groups). Figures go to stdout, bench/results.json and the ``gateway`` section of docs/benchmarks.md.
Needs: nginx + wrk (Debian), PostgreSQL and Redis on localhost, bench/.venv-litellm (litellm[proxy], py-spy).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.report import write_section  # noqa: E402

PY = str(ROOT / ".venv" / "bin" / "python")
LVENV = ROOT / "bench" / ".venv-litellm" / "bin"
DB_NAME = "bench_modelgate"
REDIS_DB = 14
FIXED = (
    '{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini",'
    '"choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the fixed upstream."},'
    '"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":7,"total_tokens":16}}'
)
BODY = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hi"}],"max_tokens":16}'
LUA = """
wrk.method = "POST"
wrk.body = [[%(body)s]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
%(delay)s
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%%.0f,"duration_us":%%.0f,"p50":%%.0f,"p90":%%.0f,' ..
    '"p99":%%.0f,"max":%%.0f,"mean":%%.1f,"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
"""

PROCS: list[subprocess.Popen] = []
LOG = ROOT / "bench" / "logs"


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(name: str, cmd: list[str], env: dict | None = None, cwd: Path = ROOT) -> subprocess.Popen:
    out = open(LOG / f"{name}.log", "w")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    PROCS.append(proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    if proc in PROCS:
        PROCS.remove(proc)


def wait_http(
    url: str, timeout: float, proc: subprocess.Popen, data: bytes | None = None, headers=None
) -> None:
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            req = urllib.request.Request(url, data=data, headers=headers or {})
            with urllib.request.urlopen(req, timeout=5) as r:
                if r.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
            last = exc
        except Exception as exc:
            last = exc
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout}s: {last}")


def run(cmd: list[str], env=None, timeout=600, check=True) -> str:
    p = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode:
        raise RuntimeError(f"{cmd[:3]} failed ({p.returncode}): {p.stderr[-2000:]}{p.stdout[-1000:]}")
    return p.stdout + p.stderr


def result_of(out: str) -> dict:
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"no RESULT in output: {out[-1500:]}")


# --- services ---------------------------------------------------------------------------------------


def start_nginx(tmp: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 2;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /v1/chat/completions {{
            default_type application/json;
            return 200 '{FIXED}';
        }}
        location / {{
            default_type application/json;
            return 404 '{{"error":{{"message":"not found","type":"invalid_request_error"}}}}';
        }}
    }}
}}
"""
    )
    proc = start(
        "nginx",
        ["nginx", "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "nginx-error.log"), "-g", "daemon off;"],
    )
    wait_http(f"http://127.0.0.1:{port}/v1/chat/completions", 15, proc, data=BODY.encode())
    return proc, port


def gw_env(tmp: Path, settings: str = "config.settings.production") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "DJANGO_"))}
    from cryptography.fernet import Fernet  # project venv is not ours; fall back below

    env.update(
        DJANGO_SETTINGS_MODULE=settings,
        DJANGO_SECRET_KEY="bench-" + "x" * 50,
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        MODELGATE_SERVE_STATIC="0",
        DJANGO_SECURE_SSL_REDIRECT="0",
        DATABASE_URL=f"postgres:///{DB_NAME}",
        REDIS_URL=f"redis://127.0.0.1:6379/{REDIS_DB}",
        CELERY_BROKER_URL=f"redis://127.0.0.1:6379/{REDIS_DB}",
        MODELGATE_DATA_DIR=str(tmp / "data"),
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


def prepare_db(env: dict) -> None:
    run(["dropdb", "--if-exists", "--force", DB_NAME])
    run(["createdb", DB_NAME])
    run(["redis-cli", "-n", str(REDIS_DB), "FLUSHDB"])
    run([PY, "manage.py", "migrate", "--noinput", "-v", "0"], env=env)


def start_gateway(env: dict, workers: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [
        str(ROOT / ".venv/bin/uvicorn"),
        "config.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    cmd += ["--workers", str(workers), "--no-access-log", "--log-level", "warning", "--backlog", "4096"]
    proc = start("uvicorn", cmd, env=env)
    wait_http(f"http://127.0.0.1:{port}/v1/models", 60, proc)
    return proc, port


def start_simulator() -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = start("simulator", [PY, "-m", "inference.simulator", "--host", "127.0.0.1", "--port", str(port)])
    wait_http(f"http://127.0.0.1:{port}/v1/models", 30, proc)
    return proc, port


def start_litellm(tmp: Path, nginx_port: int, workers: int) -> tuple[subprocess.Popen, int]:
    if not (LVENV / "litellm").exists():
        raise RuntimeError("bench/.venv-litellm/bin/litellm missing (pip install 'litellm[proxy]' failed?)")
    port = free_port()
    cfg = tmp / "litellm.yaml"
    cfg.write_text(
        f"""model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:{nginx_port}/v1
      api_key: sk-bench-upstream
litellm_settings:
  telemetry: false
  drop_params: true
general_settings:
  master_key: sk-litellm-bench
"""
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "DJANGO_"))}
    env.update(LITELLM_LOG="ERROR", LITELLM_MODE="PRODUCTION", NO_DOCS="True")
    cmd = [str(LVENV / "litellm"), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--num_workers", str(workers), "--telemetry", "False"]
    proc = start("litellm", cmd, env=env)
    wait_http(f"http://127.0.0.1:{port}/health/liveliness", 180, proc)
    return proc, port


# --- measurement ------------------------------------------------------------------------------------


def wrk(tmp: Path, port: int, key: str, conns: int, seconds: int, delay_ms: float | None = None) -> dict:
    delay = f"function delay() return {delay_ms} end" if delay_ms else ""
    script = tmp / f"bench-{port}-{conns}.lua"
    script.write_text(LUA % {"body": BODY, "key": key, "delay": delay})
    threads = 1 if conns == 1 else 2
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{conns}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
    ]
    out = run([*cmd, f"http://127.0.0.1:{port}/v1/chat/completions"], timeout=seconds + 60)
    m = re.search(r"WRKJSON (\{.*\})", out)
    if not m:
        raise RuntimeError(f"wrk gave no summary: {out[-800:]}")
    r = json.loads(m.group(1))
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["errors"] = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    return r


def workers_of(pid: int) -> list[int]:
    out = []
    for c in children(pid):
        try:
            if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes():
                out.append(c)
        except OSError:
            pass
    return out


def children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(p.name))
            except (OSError, ValueError, IndexError):
                pass
    return out


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler(threading.Thread):
    def __init__(self, pids: list[int]):
        super().__init__(daemon=True)
        self.pids, self.peak_total, self.peak_each, self.stop_flag = pids, 0, dict.fromkeys(pids, 0), False

    def run(self) -> None:
        while not self.stop_flag:
            vals = {p: rss_kib(p) for p in self.pids}
            for p, v in vals.items():
                self.peak_each[p] = max(self.peak_each[p], v)
            self.peak_total = max(self.peak_total, sum(vals.values()))
            time.sleep(0.5)


def batch_phase(env: dict, gw_port: int, key: str, lines: int) -> dict:
    """One Celery worker process (the production settings, Redis broker) runs an N-line batch
    submitted through the openai SDK; lines/s from ``in_progress`` to ``completed``."""
    worker = start(
        "celery-batch",
        [PY, "-m", "celery", "-A", "config", "worker", "-c", "1", "-P", "prefork", "-l", "WARNING",
         "-n", "bench-batch@%h"],
        env=env,
    )  # fmt: skip
    try:
        time.sleep(3)
        out = result_of(
            run(
                [PY, "bench/batch.py", "batch", "--gateway", f"http://127.0.0.1:{gw_port}/v1",
                 "--key", key, "--n", str(lines)],
                env=env, timeout=1900,
            )
        )  # fmt: skip
        out["worker"] = "1 Celery worker process (prefork -c 1), BATCH_LINE_CONCURRENCY lanes"
        return out
    finally:
        stop(worker)


def med(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def profile(tmp: Path, worker_pids: list[int], port: int, key: str, seconds: int) -> dict:
    pyspy = shutil.which("py-spy") or str(LVENV / "py-spy")
    raw = ROOT / "bench" / "profile.txt"
    svg = ROOT / "bench" / "profile.svg"
    p1 = subprocess.Popen(
        [pyspy, "record", "-d", str(seconds), "-r", "200", "-o", str(svg), "--pid", str(worker_pids[0])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    p2 = subprocess.Popen(
        [
            pyspy,
            "record",
            "-d",
            str(seconds),
            "-r",
            "200",
            "-f",
            "raw",
            "-o",
            str(raw),
            "--pid",
            str(worker_pids[-1]),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    PROCS.extend([p1, p2])
    time.sleep(1)
    w = wrk(tmp, port, key, 64, seconds - 2)
    errs = [p.communicate(timeout=60)[1].decode()[-300:] for p in (p1, p2)]
    for p in (p1, p2):
        PROCS.remove(p)
    if not raw.exists():
        return {"error": " | ".join(errs), "wrk": w}
    return {"wrk": w, **summarise_profile(raw)}


def summarise_profile(raw: Path) -> dict:
    self_t: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        n = int(n)
        total += n
        frames = [re.sub(r"\s+\(/.*?/(site-packages|main)/", " (", f) for f in stack.split(";")]
        self_t[frames[-1]] = self_t.get(frames[-1], 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n
    top = lambda d: [(f, round(100 * v / total, 1)) for f, v in sorted(d.items(), key=lambda kv: -kv[1])[:25]]  # noqa: E731
    project = {
        f: v
        for f, v in incl.items()
        if re.search(r"\((inference|billing|accounts|models_catalog|config)/", f)
    }
    return {"samples": total, "self": top(self_t), "inclusive": top(incl), "project": top(project)}


# --- main -------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--c1-seconds", type=int, default=10)
    ap.add_argument("--load-seconds", type=int, default=15)
    ap.add_argument(
        "--streams", default="500,1000,2000", help="stream counts to try in order (stop at a failure)"
    )
    ap.add_argument("--stream-seconds", type=int, default=60)
    ap.add_argument("--ledger-procs", type=int, default=16)
    ap.add_argument("--batch-lines", type=int, default=2000)
    ap.add_argument("--skip-litellm", action="store_true")
    ap.add_argument(
        "--only", default="", help="comma list: load,ttft,streams,batch,ledger,profile (default all)"
    )
    a = ap.parse_args()
    only = set(filter(None, a.only.split(","))) or {"load", "ttft", "streams", "batch", "ledger", "profile"}
    cores = os.cpu_count() or 1
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    LOG.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="mg-bench-"))
    res: dict = {"started": datetime.now(UTC).isoformat(), "cores": cores, "blocked": {}, "contention": []}

    def contention(phase: str) -> None:  # other people's processes share these 2 cores
        ps = run(["ps", "-eo", "pid,pcpu,etime,args", "--sort=-pcpu"], check=False).splitlines()[1:8]
        res["contention"].append({"phase": phase, "loadavg": os.getloadavg(), "top": [x[:140] for x in ps]})

    try:
        contention("start")
        _nginx, nginx_port = start_nginx(tmp)
        log(f"nginx on {nginx_port}")
        _sim, sim_port = start_simulator()
        log(f"simulator on {sim_port}")
        env = gw_env(tmp)
        prepare_db(env)
        seed = result_of(
            run(
                [
                    PY,
                    "bench/gw_helpers.py",
                    "seed",
                    "--nginx",
                    f"http://127.0.0.1:{nginx_port}",
                    "--sim",
                    f"http://127.0.0.1:{sim_port}",
                ],
                env=env,
            )
        )
        # B: the shipped production settings, unchanged
        gw, gw_port = start_gateway(env, cores)
        workers = workers_of(gw.pid)
        log(f"modelgate on {gw_port}, workers {workers}")
        targets = {"A": (nginx_port, "sk-bench-upstream"), "B": (gw_port, seed["key"])}
        if not a.skip_litellm:
            try:
                llm, llm_port = start_litellm(tmp, nginx_port, cores)
                targets["C"] = (llm_port, "sk-litellm-bench")
                log(f"litellm on {llm_port}")
            except Exception as exc:
                tail = (LOG / "litellm.log").read_text()[-1500:] if (LOG / "litellm.log").exists() else ""
                res["blocked"]["C"] = f"{exc}\n{tail}"
                log(f"LiteLLM blocked: {exc}")
        # warm-up + correctness check of each target
        for name, (port, key) in targets.items():
            w = wrk(tmp, port, key, 4, 3)
            log(f"warm-up {name}: {w['requests']} requests, {w['errors']} errors")
            if w["errors"] or w["requests"] == 0:
                res["blocked"][name + "-warmup"] = w
        versions = {
            "nginx": run(["nginx", "-v"]).strip(),
            "wrk": run(["wrk", "-v"], check=False).strip().splitlines()[0],
            "postgres": run(["psql", "-Atc", "show server_version"]).strip(),
            "redis": run(["redis-cli", "INFO", "server"], check=False).split("redis_version:")[-1].split()[0],
            "python": platform.python_version(),
            "django/uvicorn": run(
                [PY, "-c", "import django,uvicorn;print(django.__version__, uvicorn.__version__)"]
            ).strip(),
            "litellm": run(
                [str(LVENV / "python"), "-c", "import importlib.metadata as m;print(m.version('litellm'))"],
                check=False,
            ).strip()
            if (LVENV / "python").exists()
            else "not installed",
            "kernel": platform.release(),
            "cpu": next(
                (
                    ln.split(":", 1)[1].strip()
                    for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")
                ),
                "?",
            ),
        }
        res["versions"] = versions
        contention("before-load")
        if "load" in only:
            load: dict = {}
            since = datetime.now(UTC).isoformat()
            for rnd in range(a.rounds):
                for conns, secs in ((1, a.c1_seconds), (64, a.load_seconds), (256, a.load_seconds)):
                    for name, (port, key) in targets.items():
                        w = wrk(tmp, port, key, conns, secs)
                        load.setdefault(f"{name}/c{conns}", []).append(w)
                        log(
                            f"round {rnd + 1} {name} c{conns}: {w['rps']:.0f} req/s p50 {w['p50'] / 1e3:.2f} ms p99 {w['p99'] / 1e3:.2f} ms errors {w['errors']}"
                        )
            res["load"] = load
            # paced load (wrk's delay hook, 32 connections) at ~half of B's c64 rate: a closed-loop
            # approximation of an open-loop fixed rate (wrk2 is not in Debian)
            b_rps = med(load["B/c64"], "rps")
            target_rps = max(10.0, b_rps / 2)
            delay = max(1.0, 32 / target_rps * 1000 - med(load["B/c1"], "p50") / 1e3)
            paced = {}
            for name, (port, key) in targets.items():
                paced[name] = wrk(tmp, port, key, 32, a.load_seconds, delay_ms=round(delay, 1))
                log(f"paced {name}: {paced[name]['rps']:.0f} req/s p99 {paced[name]['p99'] / 1e3:.2f} ms")
            res["paced"] = {"delay_ms": delay, "target_rps": target_rps, **paced}
            time.sleep(3)
            res["load_usage"] = result_of(
                run([PY, "bench/gw_helpers.py", "counts", "--since", since], env=env)
            )
        if "profile" in only:
            res["profile"] = profile(tmp, workers, gw_port, seed["key"], 15)
            log(f"profile: {res['profile'].get('samples')} samples {res['profile'].get('error', '')}")
        if "C" in targets:  # free the cores for the rest
            stop(llm)
        if "ttft" in only:
            res["ttft"] = result_of(
                run(
                    [
                        PY,
                        "bench/streams.py",
                        "ttft",
                        "--direct",
                        f"http://127.0.0.1:{sim_port}/v1/chat/completions",
                        "--gateway",
                        f"http://127.0.0.1:{gw_port}/v1/chat/completions",
                        "--key",
                        seed["key"],
                        "--n",
                        "200",
                    ]
                )
            )
            log(f"ttft: {res['ttft']}")
        contention("before-streams")
        if "streams" in only:
            res["streams"] = []
            delay_ms = 2000
            chunks = max(2, a.stream_seconds * 1000 // delay_ms)
            for n in [int(x) for x in a.streams.split(",") if x]:
                since = datetime.now(UTC).isoformat()
                sampler = RssSampler(workers)
                base = {p: rss_kib(p) for p in workers}
                sampler.start()
                out = result_of(
                    run(
                        [
                            PY,
                            "bench/streams.py",
                            "hold",
                            "--gateway",
                            f"http://127.0.0.1:{gw_port}/v1/chat/completions",
                            "--key",
                            seed["key"],
                            "--n",
                            str(n),
                            "--chunks",
                            str(chunks),
                            "--delay-ms",
                            str(delay_ms),
                            "--ramp",
                            str(max(10, n // 40)),
                        ],
                        timeout=a.stream_seconds + n // 40 + 300,
                    )
                )
                sampler.stop_flag = True
                sampler.join()
                time.sleep(5)  # (each stream is settled before its last event; margin for stragglers)
                counts = result_of(run([PY, "bench/gw_helpers.py", "counts", "--since", since], env=env))
                audit = run([PY, "manage.py", "billing_audit"], env=env, check=False).strip().splitlines()[-1]
                billed = sum(
                    r["n"]
                    for r in counts["rows"]
                    if r["model"] == "gpt-4o" and r["status"] == "ok" and r["stream"]
                )
                row = {
                    **out,
                    "billed": billed,
                    "usage_rows": counts["rows"],
                    "audit": audit,
                    "rss_base_kib": sum(base.values()),
                    "rss_peak_kib": sampler.peak_total,
                    "rss_peak_each_kib": list(sampler.peak_each.values()),
                }
                res["streams"].append(row)
                log(
                    f"streams {n}: completed {out['completed']} errors {out['errors']} billed {billed} peak RSS {sampler.peak_total / 1024:.0f} MiB; {audit}"
                )
                if out["errors"] or out["completed"] != n or sampler.peak_total > 1024 * 1024:
                    break
        if "batch" in only:
            res["batch"] = batch_phase(env, gw_port, seed["key"], a.batch_lines)
            log(f"batch: {res['batch']}")
        res["too_many_clients"] = (LOG / "uvicorn.log").read_text().count("too many clients already")
        contention("before-ledger")
        if "ledger" in only:
            stop(gw)  # the ledger run gets the machine to itself (PostgreSQL + the process pool)
            led = result_of(
                run(
                    [PY, "bench/gw_helpers.py", "ledger", "--org-id", str(seed["ledger_org_id"]),
                     "--procs", str(a.ledger_procs), "--seconds", "8", "--rounds", str(a.rounds),
                     "--exact-org", str(seed["exact_org_id"]), "--exact-n", "3000"],
                    env=env, timeout=900,
                )
            )  # fmt: skip
            rounds, exact = led["rounds"], led["exact"]
            log(f"ledger: {rounds} exact: {exact}")
            audit = run([PY, "manage.py", "billing_audit"], env=env, check=False).strip().splitlines()[-1]
            res["ledger"] = {"rounds": rounds, "exact": exact, "audit": audit}
    except Exception:
        res["error"] = traceback.format_exc()[-3000:]
        log("FAILED:\n" + res["error"])
    finally:
        for p in list(PROCS):
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
        (ROOT / "bench" / "results.json").write_text(json.dumps(res, indent=1, default=str))
    from bench.writeup import render

    write_section("gateway", render(res, a))
    log("written docs/benchmarks.md (section gateway) and bench/results.json")
    return 1 if "error" in res else 0


if __name__ == "__main__":
    sys.exit(main())
