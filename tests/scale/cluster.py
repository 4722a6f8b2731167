"""Two web nodes and two worker nodes sharing one PostgreSQL and one Redis.

Each node is its own process group (``start_new_session``) with its own environment, data
directory and prometheus multiprocess directory. With ``netns=True`` (root, iproute2) every node
also runs in its own network namespace — a separate host as far as TCP is concerned — joined to
a bridge in the host namespace:

    host ns:  bridge 10.213.N.1  ← simulator (upstream), TCP forwarder → 127.0.0.1:5432 / :6379
    web1 ns:  10.213.N.11:8000    web2 ns: 10.213.N.12:8000
    wk1 ns:   10.213.N.21 (worker metrics :9100)    wk2 ns: 10.213.N.22 (:9100, + beat)

PostgreSQL and Redis listen on 127.0.0.1 only; ``forward.py`` accepts on the bridge address and
connects to loopback, so pg_hba and Redis' bind stay untouched. Without netns the nodes listen on
distinct loopback ports instead (same process-group separation).

Job files (``/v1/files``) live in a directory shared by all nodes (``MEDIA_ROOT``), standing in
for the shared bucket or mount a real deployment needs (docs/jobs.md).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WEB_NODES = ("web1", "web2")
WORKER_NODES = ("wk1", "wk2")
WEB_PORT = 8000
WORKER_METRICS_PORT = 9100
METRICS_TOKEN = "scale-test-metrics-token"


def netns_available() -> tuple[bool, str]:
    """Root and a working ``ip netns``: try it (some containers forbid it)."""
    if os.geteuid() != 0:
        return False, "not root"
    if not shutil.which("ip"):
        return False, "iproute2 (ip) not installed"
    name = f"mgprobe{os.getpid() % 100000}"
    probe = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if probe.returncode != 0:
        return False, f"ip netns add failed: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return True, "ok"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True)


@dataclass
class Node:
    name: str
    kind: str  # web | worker | simulator | forwarder
    proc: subprocess.Popen
    log: Path
    url: str = ""  # web: base URL; worker: metrics URL
    hostname: str = ""  # worker: Celery node name

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


@dataclass
class Cluster:
    database_url: str  # as seen from the host (127.0.0.1)
    redis_url: str
    broker_url: str
    result_url: str
    workdir: Path
    netns: bool
    settings_env: dict = field(default_factory=dict)  # DJANGO_* / FIELD_ENCRYPTION_KEY for every node
    node_env: dict = field(default_factory=dict)  # extra environment for every node
    tag: str = field(default_factory=lambda: f"{os.getpid() % 250 + 1}")
    nodes: dict[str, Node] = field(default_factory=dict)
    _namespaces: list[str] = field(default_factory=list)
    _links: list[str] = field(default_factory=list)

    # --- network ------------------------------------------------------------------------------

    @property
    def subnet(self) -> str:
        return f"10.213.{self.tag}"

    @property
    def host_addr(self) -> str:
        return f"{self.subnet}.1" if self.netns else "127.0.0.1"

    def node_addr(self, name: str) -> str:
        if not self.netns:
            return "127.0.0.1"
        octet = {"web1": 11, "web2": 12, "wk1": 21, "wk2": 22}[name]
        return f"{self.subnet}.{octet}"

    def _ns(self, name: str) -> str:
        return f"mgs{self.tag}-{name}"

    def _network_up(self) -> None:
        bridge = f"mgs{self.tag}br"
        _run("ip", "link", "add", bridge, "type", "bridge")
        self._links.append(bridge)
        _run("ip", "addr", "add", f"{self.host_addr}/24", "dev", bridge)
        _run("ip", "link", "set", bridge, "up")
        for name in (*WEB_NODES, *WORKER_NODES):
            ns, host_end, ns_end = self._ns(name), f"mgs{self.tag}{name}h", f"mgs{self.tag}{name}n"
            _run("ip", "netns", "add", ns)
            self._namespaces.append(ns)
            _run("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end)
            self._links.append(host_end)
            _run("ip", "link", "set", ns_end, "netns", ns)
            _run("ip", "link", "set", host_end, "master", bridge)
            _run("ip", "link", "set", host_end, "up")
            _run("ip", "-n", ns, "addr", "add", f"{self.node_addr(name)}/24", "dev", ns_end)
            _run("ip", "-n", ns, "link", "set", ns_end, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")

    def _network_down(self) -> None:
        for ns in self._namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for link in reversed(self._links):
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        self._namespaces.clear()
        self._links.clear()

    def _prefix(self, name: str) -> list[str]:
        return ["ip", "netns", "exec", self._ns(name)] if self.netns else []

    def _service_url(self, url: str) -> str:
        """The shared service's URL as a node sees it (through the forwarder in netns mode)."""
        if not self.netns:
            return url
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)
        host_port = f"{self.host_addr}:{parts.port}"
        return urlunsplit(
            parts._replace(netloc=f"{netloc[0]}@{host_port}" if len(netloc) == 2 else host_port)
        )

    # --- processes ----------------------------------------------------------------------------

    def _spawn(self, name: str, kind: str, cmd: list[str], env: dict, **node) -> Node:
        log = self.workdir / f"{name}.log"
        handle = open(log, "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [*self._prefix(name), *cmd] if kind in ("web", "worker") else cmd,
            env=env,
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own: kill it whole
        )
        handle.close()
        self.nodes[name] = Node(name, kind, proc, log, **node)
        return self.nodes[name]

    def _env(self, name: str, **extra: str) -> dict:
        data = self.workdir / name
        prom = data / "prometheus"
        shutil.rmtree(prom, ignore_errors=True)
        prom.mkdir(parents=True)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABASE_", "REDIS_", "CELERY_", "PROMETHEUS_", "MODELGATE_REQUIRE"))
        }
        env.update(
            {
                "PYTHONPATH": str(ROOT),
                "DATABASE_URL": self._service_url(self.database_url),
                "REDIS_URL": self._service_url(self.redis_url),
                "CELERY_BROKER_URL": self._service_url(self.broker_url),
                "CELERY_RESULT_BACKEND": self._service_url(self.result_url),
                "MODELGATE_DATA_DIR": str(data),
                "MEDIA_ROOT": str(self.workdir / "shared-media"),
                "PROMETHEUS_MULTIPROC_DIR": str(prom),
                "METRICS_TOKEN": METRICS_TOKEN,
                "LOG_LEVEL": "WARNING",
                **self.settings_env,
                **self.node_env,
                **extra,
            }
        )
        return env

    def start(self, *, with_beat: str = "wk2") -> Cluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "shared-media").mkdir(exist_ok=True)
        try:
            if self.netns:
                self._network_up()
                db, redis = urlsplit(self.database_url), urlsplit(self.redis_url)
                specs = [f"{self.host_addr}:{db.port or 5432}=127.0.0.1:{db.port or 5432}"]
                specs.append(f"{self.host_addr}:{redis.port or 6379}=127.0.0.1:{redis.port or 6379}")
                self._spawn(
                    "forwarder",
                    "forwarder",
                    [sys.executable, str(Path(__file__).with_name("forward.py")), *specs],
                    dict(os.environ),
                )
            sim_port = _free_port() if not self.netns else 8900
            self._spawn(
                "simulator",
                "simulator",
                [
                    sys.executable,
                    "-m",
                    "inference.simulator",
                    "--host",
                    self.host_addr,
                    "--port",
                    str(sim_port),
                ],
                {**os.environ, "PYTHONPATH": str(ROOT)},
                url=f"http://{self.host_addr}:{sim_port}",
            )
            for name in WEB_NODES:
                self.start_web(name)
            for name in WORKER_NODES:
                self.start_worker(name, beat=(name == with_beat))
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def start_web(self, name: str) -> Node:
        port = WEB_PORT if self.netns else _free_port()
        addr = self.node_addr(name)
        cmd = [
            str(BIN / "uvicorn"),
            "config.asgi:application",
            "--host",
            addr,
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
            "--timeout-graceful-shutdown",
            "5",
        ]
        return self._spawn(name, "web", cmd, self._env(name), url=f"http://{addr}:{port}")

    def start_worker(self, name: str, *, beat: bool = False) -> Node:
        port = WORKER_METRICS_PORT if self.netns else _free_port()
        addr = self.node_addr(name)
        hostname = f"{name}@scale-{name}"
        cmd = [str(BIN / "celery"), "-A", "config", "worker", "-l", "warning", "-P", "prefork", "-c", "2"]
        cmd += ["-n", hostname, "--without-gossip", "--without-mingle"]
        if beat:
            cmd += ["-B", "-s", str(self.workdir / name / "celerybeat-schedule")]
        env = self._env(name, WORKER_METRICS_PORT=str(port), WORKER_METRICS_ADDR=addr)
        return self._spawn(name, "worker", cmd, env, url=f"http://{addr}:{port}/metrics", hostname=hostname)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        pending = {n for n, node in self.nodes.items() if node.kind in ("web", "worker", "simulator")}
        while pending:
            for name in sorted(pending):
                node = self.nodes[name]
                if not node.alive():
                    raise RuntimeError(f"{name} exited:\n{node.log_tail()}")
                url = {
                    "web": node.url + "/readyz",
                    "worker": node.url,
                    "simulator": node.url + "/_sim/requests?limit=1",
                }[node.kind]
                with contextlib.suppress(httpx.HTTPError):
                    r = httpx.get(url, timeout=2, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
                    if r.status_code == 200:
                        pending.discard(name)
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout}s: {sorted(pending)}")
            time.sleep(0.2)
        self._wait_workers_consuming(deadline)

    def _wait_workers_consuming(self, deadline: float) -> None:
        """Both workers answer a control ping (they consume from the broker)."""
        from config.celery import app

        wanted = {self.nodes[n].hostname for n in WORKER_NODES if self.nodes[n].alive()}
        while time.monotonic() < deadline:
            replies = app.control.ping(timeout=1.0) or []
            seen = {name for reply in replies for name in reply}
            if wanted <= seen:
                return
        raise RuntimeError(f"workers not consuming: {wanted}")

    def web_urls(self, alive_only: bool = True) -> list[str]:
        return [self.nodes[n].url for n in WEB_NODES if not alive_only or self.nodes[n].alive()]

    def kill(self, name: str) -> None:
        """SIGKILL the node's whole process group: no shutdown code runs (a crashed host)."""
        node = self.nodes[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.proc.pid, signal.SIGKILL)
        node.proc.wait(10)

    def worker_metrics(self, name: str) -> str:
        r = httpx.get(self.nodes[name].url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10)
        r.raise_for_status()
        return r.text

    def stop(self) -> None:
        for node in list(self.nodes.values()):
            if node.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.proc.pid, signal.SIGTERM if node.kind == "web" else signal.SIGKILL)
        for node in self.nodes.values():
            try:
                node.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.proc.pid, signal.SIGKILL)
                node.proc.wait(5)
        if self.netns:
            self._network_down()
