"""Stripe test support: signing exactly as Stripe signs, event builders, the localstripe
emulator and a minimal Checkout Sessions endpoint (localstripe has none)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

WEBHOOK_SECRET = "whsec_test_" + "b" * 32
LOCALSTRIPE_KEY = "sk_test_localstripe"


def sign(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header: ``t=…,v1=HMAC-SHA256(secret, f"{t}.{payload}")``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def event(type_: str, obj: dict, *, event_id: str | None = None, created: int | None = None) -> str:
    return json.dumps(
        {
            "id": event_id or f"evt_{secrets.token_hex(12)}",
            "object": "event",
            "api_version": "2025-03-31.basil",
            "created": created or int(time.time()),
            "livemode": False,
            "type": type_,
            "data": {"object": obj},
        }
    )


def checkout_completed(
    *, topup_id: int, pi: str, cents: int, paid: bool = True, session_id: str | None = None
):
    return event(
        "checkout.session.completed",
        {
            "id": session_id or f"cs_test_{secrets.token_hex(8)}",
            "object": "checkout.session",
            "mode": "payment",
            "amount_total": cents,
            "currency": "usd",
            "payment_status": "paid" if paid else "unpaid",
            "status": "complete",
            "payment_intent": pi,
            "client_reference_id": str(topup_id),
            "metadata": {"topup_id": str(topup_id)},
        },
    )


def payment_intent_succeeded(*, topup_id: int, pi: str, cents: int, currency: str = "usd"):
    return event(
        "payment_intent.succeeded",
        {
            "id": pi,
            "object": "payment_intent",
            "amount": cents,
            "amount_received": cents,
            "currency": currency,
            "status": "succeeded",
            "metadata": {"topup_id": str(topup_id)},
        },
    )


def charge_refunded(*, pi: str, cents: int, refunded_cents: int):
    return event(
        "charge.refunded",
        {
            "id": f"ch_{secrets.token_hex(8)}",
            "object": "charge",
            "amount": cents,
            "amount_refunded": refunded_cents,
            "refunded": refunded_cents >= cents,
            "currency": "usd",
            "payment_intent": pi,
        },
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- localstripe ---------------------------------------------------------------------------

_RUNNER = r"""
import pickle, sys
from aiohttp import web
from localstripe import resources, server

port, state = int(sys.argv[1]), sys.argv[2]

def load(self):
    try:
        with open(state, "rb") as f:
            old = pickle.load(f)
    except FileNotFoundError:
        return
    self.clear()
    self.update(old)

def dump(self):
    with open(state, "wb") as f:
        pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)

resources.Store.try_load_from_disk = load
resources.Store.dump_to_disk = dump
web.run_app(server.app, host="127.0.0.1", port=port, access_log=None, print=None)
"""


class LocalStripe:
    """localstripe on 127.0.0.1:<free port>, its state file in its own directory."""

    def __init__(self, state_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state = state_dir / "localstripe.pickle"
        self.log = open(state_dir / "localstripe.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _RUNNER, str(self.port), str(self.state)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                self.get("/v1/customers")
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("localstripe did not start") from None
                time.sleep(0.1)

    def _request(self, method: str, path: str, data: dict | None = None) -> dict:
        body = urllib.parse.urlencode(data or {}).encode() if method == "POST" else None
        request = urllib.request.Request(self.url + path, data=body, method=method)
        request.add_header("Authorization", f"Bearer {LOCALSTRIPE_KEY}")
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
        return json.loads(text) if text.strip() else {}

    def get(self, path: str) -> dict:
        return self._request("GET", path)

    def post(self, path: str, data: dict | None = None) -> dict:
        return self._request("POST", path, data)

    def configure_webhook(
        self, url: str, secret: str = WEBHOOK_SECRET, webhook_id: str = "modelgate"
    ) -> None:
        self.post(f"/_config/webhooks/{webhook_id}", {"url": url, "secret": secret})

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# --- a minimal Checkout Sessions endpoint ---------------------------------------------------


class FakeCheckout:
    """Answers ``POST /v1/checkout/sessions`` with Stripe's documented session shape and
    records every request the SDK makes (path, headers, decoded form body)."""

    def __init__(self, *, fail: bool = False) -> None:
        self.requests: list[dict] = []
        self.fail = fail
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                outer.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "form": dict(urllib.parse.parse_qsl(raw, keep_blank_values=True)),
                    }
                )
                if outer.fail or self.path != "/v1/checkout/sessions":
                    self._send(
                        400,
                        {"error": {"type": "invalid_request_error", "message": "No such thing", "code": "x"}},
                    )
                    return
                form = outer.requests[-1]["form"]
                sid = f"cs_test_{secrets.token_hex(12)}"
                self._send(
                    200,
                    {
                        "id": sid,
                        "object": "checkout.session",
                        "mode": form.get("mode"),
                        "status": "open",
                        "payment_status": "unpaid",
                        "amount_total": int(form.get("line_items[0][price_data][unit_amount]", 0)),
                        "currency": "usd",
                        "client_reference_id": form.get("client_reference_id"),
                        "metadata": {"topup_id": form.get("metadata[topup_id]")},
                        "payment_intent": None,
                        "payment_method_types": [
                            v for k, v in sorted(form.items()) if k.startswith("payment_method_types[")
                        ],
                        "success_url": form.get("success_url"),
                        "cancel_url": form.get("cancel_url"),
                        "expires_at": int(time.time()) + 86400,
                        "livemode": False,
                        "url": f"https://checkout.stripe.com/c/pay/{sid}",
                    },
                )

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
