"""Reading requests in each wire format: what a request needs, and what to hold for it.

Pure functions over the parsed JSON body (no I/O). Each returns a ``RequestPlan`` the
relay turns into a capability check, a hold and an upstream call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from django.conf import settings

from models_catalog.info import ModelInfo, RequestNeeds, Usage
from models_catalog.pricing import image_input_tokens, max_image_input_tokens, text_tokens_estimate

from .errors import InvalidRequest
from .images import ImageInfo, image_from_base64, image_from_bytes, image_from_data_url

OPENAI = "openai"
ANTHROPIC = "anthropic"


@dataclass
class RequestPlan:
    """What the relay learned from a request before any money moves."""

    model_id: str
    stream: bool
    needs: RequestNeeds
    text_tokens: int  # estimated input text tokens
    images: list[tuple[ImageInfo | None, str]] = field(
        default_factory=list
    )  # (info or None for URLs, detail)
    max_output_tokens: int | None = None  # as asked by the client (None = not given)
    images_to_generate: int = 0
    image_size: str = "1024x1024"
    image_quality: str = "standard"
    include_usage: bool = False  # the client asked for the usage chunk (OpenAI streams)

    def image_tokens(self, model: ModelInfo) -> int:
        """Image input tokens for the hold: by real pixel size when we have the bytes, else the maximum."""
        total = 0
        for info, detail in self.images:
            if info is None:
                total += max_image_input_tokens(model)
            else:
                total += image_input_tokens(model=model, width=info.width, height=info.height, detail=detail)
        return total

    def hold_usage(self, model: ModelInfo, output_tokens: int) -> Usage:
        return Usage(
            input_tokens=self.text_tokens,
            image_input_tokens=self.image_tokens(model) if model.reads_images else 0,
            output_tokens=output_tokens,
            images_generated=self.images_to_generate,
            image_size=self.image_size,
            image_quality=self.image_quality,
        )


def request_body(request) -> bytes:
    """``request.body``, with Django's own size refusal (DATA_UPLOAD_MAX_MEMORY_SIZE, an HTML 400)
    turned into the relay's 413 so the caller gets it in its wire format."""
    from django.core.exceptions import RequestDataTooBig

    try:
        return request.body
    except RequestDataTooBig:
        raise InvalidRequest(
            f"The request body is too large; the limit is {settings.RELAY_MAX_BODY_BYTES} bytes.",
            status=413,
            code="request_too_large",
        ) from None


def body_parse(raw: bytes) -> dict:
    if len(raw) > settings.RELAY_MAX_BODY_BYTES:
        raise InvalidRequest(
            f"The request body is {len(raw)} bytes; the limit is {settings.RELAY_MAX_BODY_BYTES}.",
            status=413,
            code="request_too_large",
        )
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"The request body is not valid JSON: {exc.args[0]}", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return body


def _model_id(body: dict) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("`model` is required and must be a string.", extra={"param": "model"})
    return model.strip()


def _bool(body: dict, name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequest(f"`{name}` must be a boolean.", extra={"param": name})
    return value


def _positive_int(body: dict, name: str, *, required: bool = False) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"`{name}` is required.", extra={"param": name})
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidRequest(f"`{name}` must be a positive integer.", extra={"param": name})
    return value


def _text(value, param: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"`{param}` must be a string.", extra={"param": param})
    return value


def _too_many_images(count: int) -> None:
    if count > settings.RELAY_MAX_IMAGES_PER_REQUEST:
        raise InvalidRequest(
            f"The request has {count} images; the limit is {settings.RELAY_MAX_IMAGES_PER_REQUEST}.",
            code="too_many_images",
        )


def _needs(*, images: int, output: str, tools: bool, json_mode: bool, stream: bool) -> RequestNeeds:
    return RequestNeeds(
        input_modalities=frozenset({"text", "image"}) if images else frozenset({"text"}),
        output=output,
        tools=tools,
        json_mode=json_mode,
        streaming=stream,
        image_count=images,
    )


# --- OpenAI chat completions --------------------------------------------------------------------


def _openai_image(part: dict, param: str) -> tuple[ImageInfo | None, str]:
    image_url = part.get("image_url")
    if isinstance(image_url, str):  # tolerated shorthand
        image_url = {"url": image_url}
    if not isinstance(image_url, dict) or not isinstance(image_url.get("url"), str):
        raise InvalidRequest("`image_url.url` must be a string.", extra={"param": f"{param}.image_url"})
    url = image_url["url"].strip()
    detail = image_url.get("detail") or "auto"
    if detail not in ("auto", "low", "high"):
        raise InvalidRequest(
            "`detail` must be auto, low or high.", extra={"param": f"{param}.image_url.detail"}
        )
    if url.startswith("data:"):
        return image_from_data_url(url, param=f"{param}.image_url.url"), detail
    if url.startswith(("https://", "http://")):
        return None, detail
    raise InvalidRequest(
        "An image URL must be https://, http:// or a base64 data: URL.",
        extra={"param": f"{param}.image_url.url"},
    )


def openai_chat_plan(body: dict) -> RequestPlan:
    model_id = _model_id(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("`messages` must be a non-empty array.", extra={"param": "messages"})
    texts: list[str] = []
    images: list[tuple[ImageInfo | None, str]] = []
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest("Each message needs a `role`.", extra={"param": param})
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for j, part in enumerate(content):
                part_param = f"{param}.content[{j}]"
                if not isinstance(part, dict):
                    raise InvalidRequest("A content part must be an object.", extra={"param": part_param})
                kind = part.get("type")
                if kind == "text":
                    texts.append(_text(part.get("text"), f"{part_param}.text"))
                elif kind == "image_url":
                    images.append(_openai_image(part, part_param))
                    _too_many_images(len(images))
                else:
                    texts.append(orjson.dumps(part).decode())
        elif content is not None:
            raise InvalidRequest("`content` must be a string or an array of parts.", extra={"param": param})
        if message.get("tool_calls"):
            texts.append(orjson.dumps(message["tool_calls"]).decode())
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise InvalidRequest("`tools` must be an array.", extra={"param": "tools"})
    if tools:
        texts.append(orjson.dumps(tools).decode())
    response_format = body.get("response_format")
    json_mode = isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    )
    stream = _bool(body, "stream")
    stream_options = body.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise InvalidRequest("`stream_options` must be an object.", extra={"param": "stream_options"})
    max_out = _positive_int(body, "max_completion_tokens") or _positive_int(body, "max_tokens")
    return RequestPlan(
        model_id=model_id,
        stream=stream,
        needs=_needs(
            images=len(images), output="text", tools=bool(tools), json_mode=json_mode, stream=stream
        ),
        text_tokens=sum(text_tokens_estimate(t) for t in texts) + 4 * len(messages),
        images=images,
        max_output_tokens=max_out,
        include_usage=bool(stream and stream_options and stream_options.get("include_usage")),
    )


# --- Anthropic messages ---------------------------------------------------------------------------


def _anthropic_image(block: dict, param: str) -> tuple[ImageInfo | None, str]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest("An image block needs a `source`.", extra={"param": f"{param}.source"})
    kind = source.get("type")
    if kind == "base64":
        media_type = source.get("media_type")
        data = source.get("data")
        if not isinstance(data, str):
            raise InvalidRequest(
                "`source.data` must be a base64 string.", extra={"param": f"{param}.source.data"}
            )
        return image_from_base64(data, media_type=media_type, param=f"{param}.source"), "auto"
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise InvalidRequest(
                "`source.url` must be an http(s) URL.", extra={"param": f"{param}.source.url"}
            )
        return None, "auto"
    raise InvalidRequest("`source.type` must be base64 or url.", extra={"param": f"{param}.source.type"})


def _anthropic_blocks(content, param: str, texts: list[str], images: list) -> None:
    if isinstance(content, str):
        texts.append(content)
        return
    if not isinstance(content, list):
        raise InvalidRequest("`content` must be a string or an array of blocks.", extra={"param": param})
    for j, block in enumerate(content):
        block_param = f"{param}[{j}]"
        if not isinstance(block, dict):
            raise InvalidRequest("A content block must be an object.", extra={"param": block_param})
        kind = block.get("type")
        if kind == "text":
            texts.append(_text(block.get("text"), f"{block_param}.text"))
        elif kind == "image":
            images.append(_anthropic_image(block, block_param))
            _too_many_images(len(images))
        elif kind == "tool_result":
            inner = block.get("content")
            if inner is not None:
                _anthropic_blocks(inner, f"{block_param}.content", texts, images)
        else:
            texts.append(orjson.dumps(block).decode())


def anthropic_messages_plan(body: dict) -> RequestPlan:
    model_id = _model_id(body)
    max_tokens = _positive_int(body, "max_tokens", required=True)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("`messages` must be a non-empty array.", extra={"param": "messages"})
    texts: list[str] = []
    images: list = []
    system = body.get("system")
    if system is not None:
        _anthropic_blocks(system, "system", texts, images)
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise InvalidRequest(
                "Each message needs a role of user or assistant.", extra={"param": f"messages.{i}"}
            )
        _anthropic_blocks(message.get("content"), f"messages.{i}.content", texts, images)
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise InvalidRequest("`tools` must be an array.", extra={"param": "tools"})
    if tools:
        texts.append(orjson.dumps(tools).decode())
    stream = _bool(body, "stream")
    return RequestPlan(
        model_id=model_id,
        stream=stream,
        needs=_needs(images=len(images), output="text", tools=bool(tools), json_mode=False, stream=stream),
        text_tokens=sum(text_tokens_estimate(t) for t in texts) + 4 * len(messages),
        images=images,
        max_output_tokens=max_tokens,
    )


# --- embeddings and images -----------------------------------------------------------------------


def openai_embeddings_plan(body: dict) -> RequestPlan:
    model_id = _model_id(body)
    value = body.get("input")
    if isinstance(value, str):
        tokens = text_tokens_estimate(value)
    elif isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            tokens = sum(text_tokens_estimate(v) for v in value)
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            tokens = len(value)
        elif all(isinstance(v, list) and all(isinstance(t, int) for t in v) for v in value):
            tokens = sum(len(v) for v in value)
        else:
            raise InvalidRequest(
                "`input` must be a string, strings, or token arrays.", extra={"param": "input"}
            )
    else:
        raise InvalidRequest("`input` is required.", extra={"param": "input"})
    if len(value if isinstance(value, list) else [value]) > 2048:
        raise InvalidRequest("`input` may hold at most 2048 items.", extra={"param": "input"})
    return RequestPlan(
        model_id=model_id,
        stream=False,
        needs=_needs(images=0, output="embedding", tools=False, json_mode=False, stream=False),
        text_tokens=tokens,
    )


_IMAGE_INPUT_FIELDS = ("image", "image_input", "image_url", "images", "input_image")


def openai_image_generation_plan(body: dict) -> RequestPlan:
    model_id = _model_id(body)
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequest("`prompt` is required.", extra={"param": "prompt"})
    sent_images = [name for name in _IMAGE_INPUT_FIELDS if body.get(name)]
    n = _positive_int(body, "n") or 1
    if n > 10:
        raise InvalidRequest("`n` must be between 1 and 10.", extra={"param": "n"})
    size = body.get("size") or "1024x1024"
    quality = body.get("quality") or ("standard" if "dall-e" in model_id else "medium")
    if size == "auto":
        size = "1024x1024"
    if quality == "auto":
        quality = "medium" if "dall-e" not in model_id else "standard"
    if quality == "hd" and "dall-e" not in model_id:
        quality = "high"
    return RequestPlan(
        model_id=model_id,
        stream=False,
        # An image sent to the *generation* endpoint is a request to read it.
        needs=_needs(images=len(sent_images), output="image", tools=False, json_mode=False, stream=False)
        if not sent_images
        else RequestNeeds(input_modalities=frozenset({"text", "image"}), output="text", image_count=1),
        text_tokens=text_tokens_estimate(prompt),
        images_to_generate=n,
        image_size=str(size),
        image_quality=str(quality),
    )


# --- image edits (multipart) ---------------------------------------------------------------------

_EDIT_FIELDS = (
    "model",
    "prompt",
    "n",
    "size",
    "quality",
    "response_format",
    "background",
    "output_format",
    "user",
)


def read_multipart(request) -> tuple[dict, list]:
    """``/v1/images/edits``: form fields and the uploaded images, validated, as the SDK sent them."""
    if not request.content_type.startswith("multipart/form-data"):
        raise InvalidRequest(
            "Send multipart/form-data (as the SDK's images.edit does).", code="invalid_content_type"
        )
    if len(request_body(request)) > settings.RELAY_MAX_BODY_BYTES:
        raise InvalidRequest("The request body is too large.", status=413, code="request_too_large")
    body: dict = {}
    for name in _EDIT_FIELDS:
        value = request.POST.get(name)
        if value not in (None, ""):
            body[name] = int(value) if name == "n" and value.isdigit() else value
    files: list = []
    for field_name in ("image", "image[]", "mask"):
        for upload in request.FILES.getlist(field_name):
            raw = upload.read()
            info = image_from_bytes(raw, declared_media_type=upload.content_type or None, param=field_name)
            files.append((field_name, (upload.name or "image.png", raw, info.media_type), info))
    if not any(f[0] != "mask" for f in files):
        raise InvalidRequest("`image` is required: the picture to edit.", extra={"param": "image"})
    _too_many_images(len(files))
    return body, files


def openai_image_edit_plan(body: dict, files: list) -> RequestPlan:
    plan = openai_image_generation_plan(body)
    images = [(info, "auto") for field_name, _file, info in files if field_name != "mask"]
    plan.images = images
    plan.needs = RequestNeeds(
        input_modalities=frozenset({"text", "image"}), output="image", image_count=len(images)
    )
    # The SDK-level tuple without our ImageInfo goes upstream.
    files[:] = [(name, file) for name, file, _info in files]
    return plan
