"""Fetching image URLs for providers that need the bytes — behind an SSRF guard.

Which requests are fetched: chat requests (either format) to a model whose vendor is in
``settings.RELAY_FETCH_IMAGE_URL_VENDORS`` (default: ``google`` — Gemini's
OpenAI-compatible endpoint takes inline image data, not arbitrary web URLs). Every other
provider receives http(s) URLs as they are (OpenAI, Anthropic's ``url`` source, Grok,
Qwen). The fetched bytes are inlined (a data URL / a base64 source), so the hold uses the
image's real pixel size.

The guard, for every hop (the URL and each redirect):

1. only ``http``/``https``, no credentials in the URL;
2. the host is resolved once (``resolver``, injectable; an IP literal is not resolved)
   and **every** address must be public: loopback, private (10/8, 172.16/12,
   192.168/16, fc00::/7), link-local (169.254/16, fe80::/10), multicast, unspecified,
   reserved, CGNAT (100.64/10), benchmarking, cloud metadata (169.254.169.254,
   fd00:ec2::254) and anything else not globally routable are refused — IPv4 and IPv6,
   with IPv4-mapped / NAT64 / 6to4 addresses judged by the IPv4 address inside and
   Teredo refused;
3. the connection goes to the vetted address (the URL's host replaced by the IP; the
   ``Host`` header and TLS SNI/certificate check use the name): no second DNS lookup, so
   the name can't be re-pointed between the check and the connection;
4. redirects are followed by hand, at most ``RELAY_FETCH_MAX_REDIRECTS``, each vetted
   again from step 1;
5. 200 only; ``Content-Type`` one of image/png, jpeg, gif, webp; at most
   ``RELAY_MAX_IMAGE_BYTES`` (``Content-Length`` checked first, then while reading);
   the whole fetch (DNS, redirects, body) within ``RELAY_FETCH_TIMEOUT_SECONDS``;
6. the bytes are validated like any inline image (``inference.images.image_from_bytes``).

Proxies from the environment are ignored. ``RELAY_FETCH_ALLOW_LOOPBACK_FOR_TESTS`` (default
False, not read from the environment) lets tests serve images from 127.0.0.1 / ::1.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx
import orjson
from django.conf import settings

from config.errors import ApplicationError
from models_catalog.info import ModelInfo

from .errors import InvalidRequest
from .images import ALLOWED_MEDIA_TYPES, ImageInfo, image_from_bytes

Resolver = Callable[[str, int], Awaitable[list[str]]]
ConnectHook = Callable[[str, int], None]

_REDIRECTS = (301, 302, 303, 307, 308)
_MEDIA_ALIASES = {"image/jpg": "image/jpeg"}

_METADATA = (ipaddress.ip_network("169.254.169.254/32"), ipaddress.ip_network("fd00:ec2::254/128"))
_ALSO_REFUSED = (
    ipaddress.ip_network("100.64.0.0/10"),  # CGNAT (not "private" to the ipaddress module)
    ipaddress.ip_network("0.0.0.0/8"),
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("198.18.0.0/15"),
    ipaddress.ip_network("64:ff9b:1::/48"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class ImageUrlRefused(InvalidRequest):
    """The URL points somewhere the gateway must not connect to (400)."""

    code = "image_url_refused"


class ImageFetchFailed(InvalidRequest):
    """The image could not be fetched or is not an acceptable image (400)."""

    code = "image_fetch_failed"


@dataclass(frozen=True)
class FetchedImage:
    data: bytes
    media_type: str
    info: ImageInfo
    url: str  # the final URL, after redirects


def fetches_images_for(model: ModelInfo) -> bool:
    """Whether the gateway fetches http(s) image URLs for this model (see the module docstring)."""
    return model.vendor in settings.RELAY_FETCH_IMAGE_URL_VENDORS


# --- the address check ------------------------------------------------------------------------------


def address_refusal(address: str) -> str | None:
    """Why the gateway must not connect to ``address`` (None: it may)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return address_refusal(str(ip.ipv4_mapped))
        if ip in _NAT64:
            return address_refusal(str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
        if ip.sixtofour is not None:
            return address_refusal(str(ip.sixtofour))
        if ip.teredo is not None:
            return "a tunnelled (Teredo) address"
    if any(ip in net for net in _METADATA):
        return "a cloud metadata address"
    if ip.is_loopback:
        return None if settings.RELAY_FETCH_ALLOW_LOOPBACK_FOR_TESTS else "a loopback address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if any(ip.version == net.version and ip in net for net in _ALSO_REFUSED):
        return "a non-public address"
    if not ip.is_global:
        return "a non-public address"
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # the name (or literal) from the URL
    port: int
    address: str  # the vetted IP to connect to
    path: str  # path + query

    def connect_url(self) -> str:
        ip = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{ip}:{self.port}{self.path}"

    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


async def _vet(url: str, resolver: Resolver, param: str | None) -> _Target:
    def refused(why: str) -> ImageUrlRefused:
        return ImageUrlRefused(f"The image URL is refused: {why}.", extra={"param": param})

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise refused("it is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise refused("only http and https URLs are fetched")
    if parts.username is not None or parts.password is not None:
        raise refused("credentials in image URLs are not allowed")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise refused("it has no host")
    port = port or (443 if scheme == "https" else 80)
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        addresses = [host]
    except ValueError:
        try:
            addresses = await resolver(host, port)
        except (OSError, UnicodeError):
            raise ImageFetchFailed(
                f"The image URL's host {host!r} could not be resolved.", extra={"param": param}
            ) from None
    if not addresses:
        raise ImageFetchFailed(f"The image URL's host {host!r} has no address.", extra={"param": param})
    for address in addresses:
        why = address_refusal(address)
        if why:
            raise refused(f"its host resolves to {why}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return _Target(scheme=scheme, host=host, port=port, address=addresses[0], path=path)


def _media_type(response: httpx.Response, param: str | None) -> str:
    value = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    value = _MEDIA_ALIASES.get(value, value)
    if value not in ALLOWED_MEDIA_TYPES:
        raise ImageFetchFailed(
            f"The image URL returned {value or 'no content type'}; expected image/png, image/jpeg, "
            "image/gif or image/webp.",
            extra={"param": param},
        )
    return value


async def _read_limited(response: httpx.Response, limit: int, param: str | None) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ImageFetchFailed(f"The image is larger than {limit} bytes.", extra={"param": param})
    chunks, size = [], 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size > limit:
            raise ImageFetchFailed(f"The image is larger than {limit} bytes.", extra={"param": param})
        chunks.append(chunk)
    return b"".join(chunks)


async def fetch_image(
    url: str,
    *,
    param: str | None = None,
    resolver: Resolver | None = None,
    on_connect: ConnectHook | None = None,
    max_bytes: int | None = None,
    timeout: float | None = None,
) -> FetchedImage:
    """Fetch one image URL behind the guard. ``on_connect(ip, port)`` is called right before
    each connection (tests use it to prove refused addresses were never contacted)."""
    resolver = resolver or system_resolver
    limit = max_bytes or settings.RELAY_MAX_IMAGE_BYTES
    total = timeout or settings.RELAY_FETCH_TIMEOUT_SECONDS
    current = url
    try:
        async with (
            asyncio.timeout(total),
            httpx.AsyncClient(trust_env=False, follow_redirects=False, timeout=total) as client,
        ):
            for _hop in range(settings.RELAY_FETCH_MAX_REDIRECTS + 1):
                target = await _vet(current, resolver, param)
                if on_connect is not None:
                    on_connect(target.address, target.port)
                request = client.build_request(
                    "GET",
                    target.connect_url(),
                    headers={"Host": target.host_header(), "Accept": "image/*", "User-Agent": "Modelgate/1"},
                    extensions={"sni_hostname": target.host} if target.scheme == "https" else {},
                )
                response = await client.send(request, stream=True)
                try:
                    if response.status_code in _REDIRECTS:
                        location = response.headers.get("location")
                        if not location:
                            raise ImageFetchFailed(
                                "The image URL redirected nowhere.", extra={"param": param}
                            )
                        current = urljoin(current, location)
                        continue
                    if response.status_code != 200:
                        raise ImageFetchFailed(
                            f"The image URL answered HTTP {response.status_code}.", extra={"param": param}
                        )
                    media_type = _media_type(response, param)
                    data = await _read_limited(response, limit, param)
                finally:
                    await response.aclose()
                info = image_from_bytes(data, declared_media_type=media_type, max_bytes=limit, param=param)
                return FetchedImage(data=data, media_type=info.media_type, info=info, url=current)
    except TimeoutError:
        raise ImageFetchFailed(
            f"Fetching the image took longer than {total:g} s.", extra={"param": param}
        ) from None
    except httpx.HTTPError:
        raise ImageFetchFailed("The image URL could not be fetched.", extra={"param": param}) from None
    raise ImageFetchFailed("The image URL redirected too many times.", extra={"param": param})


# --- inlining the images of a request --------------------------------------------------------------------


def _is_web_url(value) -> bool:
    return isinstance(value, str) and value.strip().lower().startswith(("http://", "https://"))


def _openai_targets(body: dict) -> list[tuple[dict, str, str]]:
    found = []
    for i, message in enumerate(body.get("messages") or ()):
        content = message.get("content") if isinstance(message, dict) else None
        for j, part in enumerate(content if isinstance(content, list) else ()):
            if isinstance(part, dict) and part.get("type") == "image_url":
                image_url = part.get("image_url")
                if isinstance(image_url, str):
                    image_url = part["image_url"] = {"url": image_url}
                if isinstance(image_url, dict) and _is_web_url(image_url.get("url")):
                    found.append(
                        (image_url, image_url["url"].strip(), f"messages[{i}].content[{j}].image_url.url")
                    )
    return found


def _anthropic_targets(body: dict) -> list[tuple[dict, str, str]]:
    found = []

    def walk(blocks, param: str) -> None:
        for j, block in enumerate(blocks if isinstance(blocks, list) else ()):
            if not isinstance(block, dict):
                continue
            if block.get("type") == "image":
                source = block.get("source")
                if (
                    isinstance(source, dict)
                    and source.get("type") == "url"
                    and _is_web_url(source.get("url"))
                ):
                    found.append((block, source["url"].strip(), f"{param}[{j}].source.url"))
            elif block.get("type") == "tool_result":
                walk(block.get("content"), f"{param}[{j}].content")

    for i, message in enumerate(body.get("messages") or ()):
        if isinstance(message, dict):
            walk(message.get("content"), f"messages.{i}.content")
    return found


async def fetch_body_images(body: dict, wire_format: str, **fetch_options) -> dict:
    """A copy of a chat request body with its http(s) image URLs fetched and inlined."""
    body = orjson.loads(orjson.dumps(body))
    anthropic = wire_format == "anthropic"
    targets = _anthropic_targets(body) if anthropic else _openai_targets(body)
    if not targets:
        return body
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(fetch_image(url, param=param, **fetch_options)) for _, url, param in targets
            ]
    except* ApplicationError as errors:
        raise errors.exceptions[0] from None
    for (holder, _url, _param), task in zip(targets, tasks, strict=True):
        image = task.result()
        encoded = base64.b64encode(image.data).decode()
        if anthropic:
            holder["source"] = {"type": "base64", "media_type": image.media_type, "data": encoded}
        else:
            holder["url"] = f"data:{image.media_type};base64,{encoded}"
    return body
