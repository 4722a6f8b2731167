"""`make run`'s embedded default, for real: SQLite, the filesystem broker, and the processes of
Procfile.demo (uvicorn, a Celery worker and beat, the upstream simulator) started by honcho —
with no configuration at all. A new user signs up; the worker answers; a model call is charged.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clean_env(data_dir: Path, web_port: int, sim_port: int) -> dict[str, str]:
    drop = ("DATABASE_URL", "REDIS_URL", "CELERY_", "DJANGO_", "MODELGATE_", "OPENAI_", "ANTHROPIC_", "XAI_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        {
            "MODELGATE_DATA_DIR": str(data_dir),
            "MODELGATE_PORT": str(web_port),
            "MODELGATE_SIM_PORT": str(sim_port),
            "MODELGATE_SIMULATOR_URL": f"http://127.0.0.1:{sim_port}",
            "MODELGATE_PUBLIC_URL": f"http://127.0.0.1:{web_port}",
            "CELERY_CONCURRENCY": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _manage(env, *args) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _wait_http(url: str, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError:
            time.sleep(0.3)
    raise AssertionError(f"{url} never answered")


@pytest.fixture
def embedded(tmp_path):
    if not (ROOT / ".venv" / "bin" / "honcho").exists() and not (VENV_BIN / "honcho").exists():
        pytest.fail("honcho is not installed: run `make install`")
    web_port, sim_port = _free_port(), _free_port()
    data_dir = tmp_path / "data"
    env = _clean_env(data_dir, web_port, sim_port)
    _manage(env, "migrate", "--noinput")
    bootstrap = _manage(env, "bootstrap")
    assert "UPSTREAM SIMULATOR" in bootstrap
    # Procfile.demo refers to .venv/bin/… like `make run`; run it with the current interpreter's venv.
    procfile = tmp_path / "Procfile"
    procfile.write_text((ROOT / "Procfile.demo").read_text().replace(".venv/bin/", f"{VENV_BIN}/"))
    log = open(tmp_path / "honcho.log", "w")  # noqa: SIM115 - closed in the finally below
    stack = subprocess.Popen(
        [str(VENV_BIN / "honcho"), "start", "-f", str(procfile), "-d", str(ROOT)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_http(f"http://127.0.0.1:{web_port}/accounts/signup/")
        _wait_http(f"http://127.0.0.1:{sim_port}/health")
        yield {
            "env": env,
            "url": f"http://127.0.0.1:{web_port}",
            "data": data_dir,
            "log": tmp_path / "honcho.log",
        }
    finally:
        os.killpg(stack.pid, signal.SIGTERM)
        try:
            stack.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)
        log.close()


def test_make_run_stack_serves_signup_runs_a_worker_and_charges_a_call(embedded):
    env, url = embedded["env"], embedded["url"]

    # 1. A signup page at the printed URL, and signing up creates user + organization.
    with httpx.Client(base_url=url, timeout=10, follow_redirects=False) as browser:
        page = browser.get("/accounts/signup/")
        assert page.status_code == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = browser.post(
            "/accounts/signup/",
            data={
                "csrfmiddlewaretoken": token,
                "email": "newbie@example.com",
                "password1": "a-long-secret-99",
                "password2": "a-long-secret-99",
                "organization": "Newbie Labs",
            },
            headers={"Referer": url + "/accounts/signup/"},
        )
        assert response.status_code == 302, response.text[:500]
    counts = _manage(
        env,
        "shell",
        "-c",
        "from accounts.models import *; print(User.objects.filter(email='newbie@example.com').count(), "
        "Organization.objects.filter(name='Newbie Labs').count(), Membership.objects.filter(role='owner').count())",
    )
    assert counts.strip().splitlines()[-1].split() == ["1", "1", "1"]

    # 2. Its Celery worker runs a task, and answers `celery inspect ping`.
    ran = _manage(env, "shell", "-c", "from config.celery import ping; print(ping.delay().get(timeout=60))")
    assert ran.strip().endswith("pong")
    ping = subprocess.run(
        [str(VENV_BIN / "celery"), "-A", "config", "inspect", "ping", "-t", "10"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert "pong" in ping.stdout

    # 3. A model call through the demo upstream (the simulator) is charged exactly once.
    slug = (
        _manage(env, "create_org", "--owner-email", "cli@example.com", "--name", "CLI")
        .strip()
        .splitlines()[-1]
    )
    secret = _manage(env, "create_api_key", "--org", slug, "--name", "demo").strip().splitlines()[-1]
    _manage(env, "grant_credit", "--org", slug, "--usd", "1.00", "--reason", "embedded test")
    from openai import OpenAI

    client = OpenAI(api_key=secret, base_url=url + "/v1", max_retries=0)
    completion = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}], max_tokens=20
    )
    assert completion.choices[0].message.content.startswith("Simulated reply")
    balance = _manage(
        env,
        "shell",
        "-c",
        f"from billing.selectors import balance_for_org; from accounts.models import Organization; "
        f"print(balance_for_org(org_id=Organization.objects.get(slug='{slug}').id).balance_units)",
    )
    assert 0 < 1_000_000_000 - int(balance.strip().splitlines()[-1]) < 1_000_000
    audit = subprocess.run(
        [sys.executable, "manage.py", "billing_audit"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
