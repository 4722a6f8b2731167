"""Image URLs fetched by the gateway, behind the SSRF guard.

Nothing here sends traffic anywhere but 127.0.0.1: refused addresses are refused before any
connection (proved by the connect hook and by the loopback server's accept counter), private
and metadata addresses come from an injected resolver or from redirects of the loopback server.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import openai
import pytest
from PIL import Image

from inference.fetch import ImageFetchFailed, ImageUrlRefused, address_refusal, fetch_image


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png(300, 200)


class _Images(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        self.server.paths.append((self.path, self.headers.get("host")))
        routes = {
            "/img.png": (200, "image/png", PNG),
            "/page.html": (200, "text/html", b"<html></html>"),
            "/liar.png": (200, "image/jpeg", PNG),
            "/big.png": (200, "image/png", PNG),
        }
        redirects = {
            "/to-private": "http://10.0.0.5/img.png",
            "/to-metadata": "http://169.254.169.254/latest/meta-data/",
            "/to-metadata-name": "http://metadata.internal.test/latest/",
            "/to-v6-loopback": "http://[::1]/img.png",
            "/to-img": "/img.png",
            "/loop": "/loop",
        }
        if self.path == "/slow.png":
            time.sleep(1.5)
        if self.path in redirects:
            self.send_response(302)
            self.send_header("Location", redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status, ctype, body = routes.get(self.path, (404, "text/plain", b"no"))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client hung up (size limit)
            self.wfile.write(body)

    def log_message(self, *args):
        pass


class _CountingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *args):
        super().__init__(*args)
        self.accepted = 0
        self.paths: list = []

    def verify_request(self, request, client_address):
        self.accepted += 1
        return True


@pytest.fixture
def image_server():
    server = _CountingServer(("127.0.0.1", 0), _Images)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    server.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


class _Hook:
    def __init__(self):
        self.calls: list[tuple[str, int]] = []

    def __call__(self, address, port):
        self.calls.append((address, port))


def _resolver(table: dict[str, list[str]]):
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"unknown host {host}")
        return table[host]

    return resolve


def _fetch(url, **kw):
    return asyncio.run(fetch_image(url, **kw))


# --- the address rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.1.1",
        "100.64.0.1",
        "100.127.255.254",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "255.255.255.255",
        "240.0.0.1",
        "198.18.0.1",
        "fc00::1",
        "fd00:ec2::254",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    ],
)
def test_non_public_addresses_are_refused(address, settings):
    settings.RELAY_FETCH_ALLOW_LOOPBACK_FOR_TESTS = False
    assert address_refusal(address) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address):
    assert address_refusal(address) is None


def test_loopback_allowance_is_only_loopback(settings):
    settings.RELAY_FETCH_ALLOW_LOOPBACK_FOR_TESTS = True
    assert address_refusal("127.0.0.1") is None
    assert address_refusal("::1") is None
    assert address_refusal("10.0.0.1") is not None
    assert address_refusal("169.254.169.254") is not None


# --- refused before any connection ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/img.png",
        "http://[::1]:{port}/img.png",
        "http://[::ffff:127.0.0.1]:{port}/img.png",
        "http://10.0.0.7/img.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://100.64.0.9/img.png",
        "http://0.0.0.0:{port}/img.png",
    ],
)
def test_refused_addresses_are_never_contacted(image_server, settings, url):
    settings.RELAY_FETCH_ALLOW_LOOPBACK_FOR_TESTS = False
    hook = _Hook()
    with pytest.raises(ImageUrlRefused):
        _fetch(url.format(port=image_server.server_address[1]), on_connect=hook, resolver=_resolver({}))
    assert hook.calls == []
    assert image_server.accepted == 0


def test_hostname_resolving_to_loopback_is_refused(image_server, settings):
    settings.RELAY_FETCH_ALLOW_LOOPBACK_FOR_TESTS = False
    hook = _Hook()
    port = image_server.server_address[1]
    with pytest.raises(ImageUrlRefused, match="loopback"):
        _fetch(
            f"http://innocent.example.test:{port}/img.png",
            on_connect=hook,
            resolver=_resolver({"innocent.example.test": ["127.0.0.1"]}),
        )
    assert hook.calls == []
    assert image_server.accepted == 0


def test_hostname_with_any_private_address_is_refused(settings):
    hook = _Hook()
    resolver = _resolver({"mixed.example.test": ["93.184.216.34", "10.0.0.1"]})
    with pytest.raises(ImageUrlRefused, match="private"):
        _fetch("https://mixed.example.test/img.png", on_connect=hook, resolver=resolver)
    assert hook.calls == []


@pytest.mark.parametrize(
    "url",
    ["ftp://example.test/a.png", "file:///etc/passwd", "http://user:pw@example.test/a.png", "http:///a.png"],
)
def test_other_schemes_and_credentials_are_refused(url):
    hook = _Hook()
    with pytest.raises(ImageUrlRefused):
        _fetch(url, on_connect=hook, resolver=_resolver({"example.test": ["93.184.216.34"]}))
    assert hook.calls == []


@pytest.mark.parametrize("path", ["/to-private", "/to-metadata", "/to-v6-loopback", "/to-metadata-name"])
def test_redirect_into_a_private_address_is_refused(image_server, settings, path):
    settings.RELAY_FETCH_ALLOW_LOOPBACK_FOR_TESTS = True  # the first hop is our loopback server…
    if path == "/to-v6-loopback":
        settings.RELAY_FETCH_ALLOW_LOOPBACK_FOR_TESTS = False
    hook = _Hook()
    resolver = _resolver({"metadata.internal.test": ["169.254.169.254"]})
    url = image_server.base + path
    if path == "/to-v6-loopback":
        # …reached by a name the (injected) resolver maps to a public address, redirecting to ::1.
        url = f"http://public.example.test:{image_server.server_address[1]}{path}"
        resolver = _resolver({"public.example.test": ["127.0.0.1"]})
        with pytest.raises(ImageUrlRefused):
            _fetch(url, on_connect=hook, resolver=resolver)
        assert image_server.accepted == 0
        return
    with pytest.raises(ImageUrlRefused):
        _fetch(url, on_connect=hook, resolver=resolver)
    # …and the redirect target is refused before connecting: one connection, to 127.0.0.1 only.
    assert hook.calls == [("127.0.0.1", image_server.server_address[1])]
    assert image_server.accepted == 1


# --- fetching (from loopback, explicitly allowed) ---------------------------------------------------------


def test_fetch_pins_the_vetted_address_and_validates_the_image(image_server, settings):
    settings.RELAY_FETCH_ALLOW_LOOPBACK_FOR_TESTS = True
    hook = _Hook()
    port = image_server.server_address[1]
    lookups = []

    async def resolve(host, p):
        lookups.append(host)
        return ["127.0.0.1"]

    # The name does not exist in DNS: the fetch can only succeed by connecting to the vetted IP.
    image = _fetch(f"http://pinned.example.test:{port}/img.png", on_connect=hook, resolver=resolve)
    assert (image.media_type, image.info.width, image.info.height) == ("image/png", 300, 200)
    assert image.data == PNG
    assert lookups == ["pinned.example.test"]  # one lookup per hop, none by the HTTP client
    assert hook.calls == [("127.0.0.1", port)]
    assert image_server.paths == [("/img.png", f"pinned.example.test:{port}")]


def test_redirects_are_followed_and_bounded(image_server, settings):
    settings.RELAY_FETCH_ALLOW_LOOPBACK_FOR_TESTS = True
    hook = _Hook()
    image = _fetch(image_server.base + "/to-img", on_connect=hook)
    assert image.url.endswith("/img.png")
    assert len(hook.calls) == 2
    with pytest.raises(ImageFetchFailed, match="too many"):
        _fetch(image_server.base + "/loop")
    assert image_server.accepted == 2 + settings.RELAY_FETCH_MAX_REDIRECTS + 1


@pytest.mark.parametrize(
    ("path", "kwargs", "match"),
    [
        ("/page.html", {}, "text/html"),
        ("/missing.png", {}, "HTTP 404"),
        ("/big.png", {"max_bytes": 100}, "larger than"),
        ("/slow.png", {"timeout": 0.3}, "longer than"),
    ],
)
def test_type_size_and_time_limits(image_server, settings, path, kwargs, match):
    settings.RELAY_FETCH_ALLOW_LOOPBACK_FOR_TESTS = True
    with pytest.raises(ImageFetchFailed, match=match):
        _fetch(image_server.base + path, **kwargs)


def test_mislabelled_bytes_are_refused(image_server, settings):
    settings.RELAY_FETCH_ALLOW_LOOPBACK_FOR_TESTS = True
    from inference.images import InvalidImage

    with pytest.raises(InvalidImage):
        _fetch(image_server.base + "/liar.png")


# --- through the gateway ----------------------------------------------------------------------------------

GEMINI_FLASH_IN, GEMINI_FLASH_OUT = 300_000_000, 2_500_000_000


def _oa(gw) -> openai.OpenAI:
    return openai.OpenAI(api_key=gw.secret, base_url=gw.openai_base, max_retries=0)


def _image_message(url: str) -> list[dict]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this? [[sim tokens=20]]"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
    ]


@pytest.mark.django_db(transaction=True)
def test_gemini_image_url_is_fetched_inlined_and_held_by_real_size(gateway, image_server, settings):
    from billing.models import Hold
    from models_catalog.pricing import image_input_tokens, max_image_input_tokens, text_tokens_estimate
    from models_catalog.selectors import model_resolve

    settings.RELAY_FETCH_ALLOW_LOOPBACK_FOR_TESTS = True
    before = gateway.balance()
    completion = _oa(gateway).chat.completions.create(
        model="gemini-2.5-flash", max_tokens=100, messages=_image_message(image_server.base + "/img.png")
    )
    assert completion.choices[0].message.content.startswith("Simulated reply from gemini-2.5-flash")
    assert image_server.paths == [("/img.png", f"127.0.0.1:{image_server.server_address[1]}")]
    (upstream,) = httpx.get(gateway.simulator.url + "/_sim/requests?body=1").json()["requests"]
    sent_url = upstream["body"]["messages"][0]["content"][1]["image_url"]["url"]
    assert sent_url.startswith("data:image/png;base64,")
    reported = upstream["usage"]
    (record,) = gateway.records()
    expected = math.ceil(
        (reported["prompt_tokens"] * GEMINI_FLASH_IN + reported["completion_tokens"] * GEMINI_FLASH_OUT)
        / 1_000_000
    )
    assert record.cost_units == expected
    assert before - gateway.balance() == expected
    # The hold was placed for the real 300×200 image (Gemini: both sides ≤ 384 px → 258 tokens),
    # not for the model's maximum image cost.
    model = model_resolve("gemini-2.5-flash")
    assert image_input_tokens(model=model, width=300, height=200) == 258
    text_tokens = text_tokens_estimate("What is this? [[sim tokens=20]]") + 4  # + per-message overhead
    hold = Hold.objects.get(reference=record.request_id)
    assert hold.amount_units == math.ceil(
        ((text_tokens + 258) * GEMINI_FLASH_IN + 100 * GEMINI_FLASH_OUT) / 1_000_000
    )
    assert max_image_input_tokens(model) > 258


@pytest.mark.django_db(transaction=True)
def test_gemini_image_url_to_a_private_address_is_refused_without_charge(gateway, image_server, settings):
    settings.RELAY_FETCH_ALLOW_LOOPBACK_FOR_TESTS = False
    before = gateway.balance()
    with pytest.raises(openai.BadRequestError) as excinfo:
        _oa(gateway).chat.completions.create(
            model="gemini-2.5-flash", max_tokens=50, messages=_image_message(image_server.base + "/img.png")
        )
    assert excinfo.value.body["code"] == "image_url_refused"
    assert excinfo.value.body["param"] == "messages[0].content[1].image_url.url"
    assert image_server.accepted == 0
    assert httpx.get(gateway.simulator.url + "/_sim/requests").json()["requests"] == []
    assert gateway.balance() == before
    assert gateway.records() == []


@pytest.mark.django_db(transaction=True)
def test_providers_that_accept_urls_get_the_url_unfetched(gateway, image_server, settings):
    settings.RELAY_FETCH_ALLOW_LOOPBACK_FOR_TESTS = True
    url = image_server.base + "/img.png"
    _oa(gateway).chat.completions.create(model="gpt-4o", max_tokens=50, messages=_image_message(url))
    (upstream,) = httpx.get(gateway.simulator.url + "/_sim/requests?body=1").json()["requests"]
    assert upstream["body"]["messages"][0]["content"][1]["image_url"]["url"] == url
    assert image_server.accepted == 0
