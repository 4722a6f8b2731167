"""The relay end to end: both formats × streaming / not, failures, limits, refusals — charged exactly."""

from __future__ import annotations

import math

import anthropic
import httpx
import openai
import pytest

from billing.services import hold_place

pytestmark = pytest.mark.django_db(transaction=True)

GPT_4O_IN, GPT_4O_OUT = 2_500_000_000, 10_000_000_000
SONNET_IN, SONNET_OUT = 3_000_000_000, 15_000_000_000


def _cost(*pairs) -> int:
    return math.ceil(sum(t * p for t, p in pairs) / 1_000_000)


def _oa(gw, **kw) -> openai.OpenAI:
    return openai.OpenAI(api_key=gw.secret, base_url=gw.openai_base, max_retries=0, **kw)


def _an(gw, **kw) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=gw.secret, base_url=gw.url, max_retries=0, **kw)


def _open_holds(gw) -> int:
    from billing.services import billing_account_for_org

    return billing_account_for_org(org_id=gw.org.id).held_units


# --- OpenAI format ------------------------------------------------------------------------------------


def test_openai_stream_with_usage_is_charged_exactly(gateway):
    before = gateway.balance()
    stream = _oa(gateway).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Say something [[sim tokens=40]]"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text
    assert usage is not None
    assert usage.completion_tokens == 40
    (record,) = gateway.wait_settled(1)
    expected = _cost((usage.prompt_tokens, GPT_4O_IN), (usage.completion_tokens, GPT_4O_OUT))
    assert (record.status, record.stream, record.cost_units) == ("ok", True, expected)
    assert record.ttft_ms is not None
    assert before - gateway.balance() == expected
    assert _open_holds(gateway) == 0


def test_openai_stream_without_include_usage_hides_the_usage_chunk_but_still_charges(gateway):
    before = gateway.balance()
    chunks = list(
        _oa(gateway).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi [[sim tokens=12]]"}], stream=True
        )
    )
    assert chunks
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)  # the usage-only chunk was not forwarded
    (record,) = gateway.wait_settled(1)
    assert record.output_tokens == 12
    assert record.cost_units > 0
    assert before - gateway.balance() == record.cost_units


def test_openai_non_stream_request_id_header_and_record(gateway):
    raw = _oa(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "ping"}], max_tokens=50
    )
    request_id = raw.headers["x-request-id"]
    completion = raw.parse()
    (record,) = gateway.records()
    assert record.request_id == request_id
    assert record.output_tokens == completion.usage.completion_tokens
    assert record.latency_ms >= 0


def test_embeddings_are_charged_per_input_token(gateway):
    before = gateway.balance()
    result = _oa(gateway).embeddings.create(model="text-embedding-3-small", input=["hello world", "你好"])
    assert len(result.data) == 2
    expected = _cost((result.usage.prompt_tokens, 20_000_000))
    assert before - gateway.balance() == expected


# --- Anthropic format ---------------------------------------------------------------------------------


def test_anthropic_stream_charged_from_message_start_and_delta(gateway):
    before = gateway.balance()
    with _an(gateway).messages.stream(
        model="claude-3-5-sonnet-20241022",
        max_tokens=200,
        messages=[{"role": "user", "content": "Tell me [[sim tokens=30]]"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text
    usage = final.usage
    assert usage.output_tokens == 30
    (record,) = gateway.wait_settled(1)
    expected = _cost((usage.input_tokens, SONNET_IN), (usage.output_tokens, SONNET_OUT))
    assert record.cost_units == expected
    assert before - gateway.balance() == expected


def test_anthropic_non_stream_at_plain_v1_messages(gateway):
    message = _an(gateway).messages.create(
        model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "hello"}]
    )
    assert message.content[0].text
    (record,) = gateway.records()
    expected = _cost(
        (message.usage.input_tokens, 1_000_000_000), (message.usage.output_tokens, 5_000_000_000)
    )
    assert record.cost_units == expected


def test_anthropic_errors_use_anthropic_shape(gateway):
    client = anthropic.Anthropic(api_key="mg-" + "x" * 43, base_url=gateway.url, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as excinfo:
        client.messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert excinfo.value.body["type"] == "error"
    assert excinfo.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError) as excinfo:
        _an(gateway).messages.create(
            model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert excinfo.value.body["error"]["type"] == "not_found_error"


# --- failures -------------------------------------------------------------------------------------------


def test_upstream_failure_before_output_releases_the_hold_and_charges_nothing(gateway):
    before = gateway.balance()
    with pytest.raises(openai.APIStatusError) as excinfo:
        _oa(gateway).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x [[sim fault=500]]"}]
        )
    assert excinfo.value.status_code == 503
    assert "nothing was charged" in excinfo.value.message
    assert gateway.balance() == before
    assert _open_holds(gateway) == 0
    (record,) = gateway.records()
    assert (record.status, record.cost_units) == ("upstream_error", 0)


def test_upstream_4xx_is_passed_on_without_charge(gateway):
    before = gateway.balance()
    with pytest.raises(openai.BadRequestError):
        _oa(gateway).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x [[sim fault=400]]"}]
        )
    assert gateway.balance() == before
    assert _open_holds(gateway) == 0


def test_client_disconnect_mid_stream_is_charged_once_for_what_upstream_produced(gateway):
    before = gateway.balance()
    body = {
        "model": "gpt-4o",
        "stream": True,
        "messages": [{"role": "user", "content": "long [[sim tokens=60 chunks=30 chunk_delay_ms=30]]"}],
    }
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST",
            gateway.openai_base + "/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {gateway.secret}"},
        ) as response,
    ):
        assert response.status_code == 200
        for i, _line in enumerate(response.iter_lines()):
            if i >= 4:
                break  # hang up after a few events
    (record,) = gateway.wait_settled(1)
    assert record.status == "client_disconnected"
    # The gateway kept draining the upstream, so the charge is the upstream's full usage.
    assert record.output_tokens == 60
    assert record.usage_source == "upstream"
    expected = _cost((record.input_tokens, GPT_4O_IN), (record.output_tokens, GPT_4O_OUT))
    assert record.cost_units == expected
    assert before - gateway.balance() == expected
    assert _open_holds(gateway) == 0


def _stream_to_the_end(gw, caller: str, model: str, seen: dict) -> None:
    """Stream with the official SDK; note when the content is complete and when the stream's
    terminal event arrives, and whether the usage record existed at that moment."""
    from inference.models import UsageRecord

    prompt = "story [[sim tokens=12 chunks=4 chunk_delay_ms=20]]"
    if caller == "openai":
        stream = _oa(gw).chat.completions.create(
            model=model, stream=True, messages=[{"role": "user", "content": prompt}]
        )
        seen["request_id"] = stream.response.headers["x-request-id"]
        for chunk in stream:
            seen["started"].set()
            if chunk.choices and chunk.choices[0].finish_reason:
                seen["content_done"].set()
        # The SDK's loop ends at [DONE].
    else:
        with _an(gw).messages.stream(
            model=model, max_tokens=100, messages=[{"role": "user", "content": prompt}]
        ) as stream:
            seen["request_id"] = stream.response.headers["x-request-id"]
            for event in stream:
                seen["started"].set()
                if event.type == "message_delta":
                    seen["content_done"].set()
                if event.type == "message_stop":
                    break
    seen["recorded_at_end"] = UsageRecord.objects.filter(request_id=seen["request_id"]).exists()
    seen["ended"].set()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("caller", "model"),
    [
        ("openai", "gpt-4o"),
        ("anthropic", "claude-3-5-sonnet-20241022"),
        ("openai", "claude-3-5-sonnet-20241022"),
    ],
    ids=["openai", "anthropic", "translated"],
)
def test_a_stream_ends_for_the_client_only_once_its_charge_has_committed(gateway, caller, model):
    """[DONE] / message_stop is held back until the settlement commits: a client that saw the
    end of its stream has been charged, even if the gateway process dies right after. The
    settlement is kept waiting here by a lock on the organization's balance row."""
    import threading

    from django.db import transaction

    from billing.models import BillingAccount

    seen = {"started": threading.Event(), "content_done": threading.Event(), "ended": threading.Event()}
    client = threading.Thread(target=_stream_to_the_end, args=(gateway, caller, model, seen))
    client.start()
    try:
        assert seen["started"].wait(10)  # the hold is placed: the balance row is free again
        with transaction.atomic():
            BillingAccount.objects.select_for_update().get(organization_id=gateway.org.id)
            # The upstream's stream (4 chunks, 20 ms apart) is over well within this wait.
            ended_while_locked = seen["ended"].wait(1.5)
            content_while_locked = seen["content_done"].is_set()
        assert not ended_while_locked, "the stream ended before its charge could commit"
        if model == "gpt-4o" or caller == "anthropic":
            # Same format: everything up to the terminal event flowed meanwhile. (Translated from
            # Anthropic, the finish chunk is made from message_stop and waits with [DONE].)
            assert content_while_locked
        assert seen["ended"].wait(10)
    finally:
        client.join(15)
    assert seen["recorded_at_end"], "the client saw the end of a stream that was not recorded"
    (record,) = gateway.records()
    assert (record.status, record.output_tokens) == ("ok", 12)
    assert record.cost_units > 0


def test_upstream_dropping_mid_stream_charges_what_was_produced_never_zero(gateway):
    before = gateway.balance()
    stream = _oa(gateway).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "x [[sim tokens=40 fault=disconnect_mid_stream]]"}],
        stream=True,
    )
    with pytest.raises(Exception):
        for _chunk in stream:
            pass
    (record,) = gateway.wait_settled(1)
    assert record.status == "upstream_error"
    assert record.usage_source == "estimated"
    assert record.output_tokens > 0
    assert record.cost_units > 0
    assert before - gateway.balance() == record.cost_units


@pytest.mark.parametrize("policy", ["missing", "zero", "negative"])
def test_bad_upstream_usage_is_estimated_never_credited(gateway, policy):
    before = gateway.balance()
    completion = _oa(gateway).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": f"hi [[sim usage={policy} tokens=20]]"}]
    )
    assert completion.choices[0].message.content
    (record,) = gateway.records()
    assert record.usage_source == "estimated"
    assert record.cost_units > 0
    assert before - gateway.balance() == record.cost_units


# --- limits and refusals ---------------------------------------------------------------------------------


def _key(gw, **limits):
    from accounts.services import api_key_create

    key, secret = api_key_create(actor=gw.owner, name="limited", **limits)
    return key, secret


def test_rpm_limit_gives_429_with_retry_after(gateway):
    _key_obj, secret = _key(gateway, rpm_limit=2)
    client = openai.OpenAI(api_key=secret, base_url=gateway.openai_base, max_retries=0)
    for _ in range(2):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], max_tokens=5
        )
    with pytest.raises(openai.RateLimitError) as excinfo:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], max_tokens=5
        )
    assert int(excinfo.value.response.headers["retry-after"]) >= 1
    assert excinfo.value.body["code"] == "rate_limit_exceeded"
    assert len(gateway.records()) == 2


def test_model_allowlist_gives_403(gateway):
    _key_obj, secret = _key(gateway, allowed_models=["gpt-4o-mini"])
    client = openai.OpenAI(api_key=secret, base_url=gateway.openai_base, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as excinfo:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert excinfo.value.body["code"] == "model_not_allowed"
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], max_tokens=5
    )


def test_spend_cap_refuses_once_reached_and_counts_actual_spend(gateway):
    key, secret = _key(gateway, spend_cap_units=200_000)  # $0.0002
    client = openai.OpenAI(api_key=secret, base_url=gateway.openai_base, max_retries=0)
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], max_tokens=20
    )
    key.refresh_from_db()
    (record,) = gateway.records()
    assert key.spent_units == record.cost_units  # the reservation was trued up to the actual cost
    with pytest.raises(openai.APIStatusError) as excinfo:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}], max_tokens=500
        )
    assert excinfo.value.status_code == 402
    assert excinfo.value.body["code"] == "insufficient_quota"
    assert "spend cap" in excinfo.value.message
    key.refresh_from_db()
    assert key.spent_units == record.cost_units


def test_insufficient_balance_is_402_insufficient_quota_and_nothing_reaches_upstream(gateway):
    from billing.services import billing_account_for_org

    available = billing_account_for_org(org_id=gateway.org.id).available_units
    hold_place(org_id=gateway.org.id, amount_units=available - 1000, reference="test: eat the balance")
    seq = gateway.simulator.app._seq
    with pytest.raises(openai.APIStatusError) as excinfo:
        _oa(gateway).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}], max_tokens=1000
        )
    assert excinfo.value.status_code == 402
    assert excinfo.value.body["type"] == "insufficient_quota"
    assert excinfo.value.body["code"] == "insufficient_quota"
    assert gateway.simulator.app._seq == seq
    assert gateway.records() == []


def test_without_max_tokens_a_small_balance_still_works_with_a_lowered_cap(gateway):
    """gpt-4o's 16k max output costs more than $0.10; without max_tokens the gateway lowers it."""
    from billing.services import billing_account_for_org, credit_adjust

    balance = billing_account_for_org(org_id=gateway.org.id).balance_units
    credit_adjust(
        org_id=gateway.org.id, amount_units=-(balance - 100_000_000), reason="leave $0.10", acting_user=None
    )
    completion = _oa(gateway).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content
    sent = gateway.simulator.app.requests[-1]
    assert sent["model"] == "gpt-4o"
    (record,) = gateway.records()
    assert record.cost_units > 0
    assert gateway.balance() == 100_000_000 - record.cost_units


@pytest.mark.parametrize(
    ("model", "content", "missing"),
    [
        (
            "gpt-image-1",
            [
                {"type": "text", "text": "describe"},
                {"type": "image_url", "image_url": {"url": "https://e.com/a.png"}},
            ],
            "cannot read",
        ),
        ("dall-e-3", "hello", "dall-e-3"),
        ("text-embedding-3-small", "hello", "text-embedding-3-small"),
    ],
)
def test_guard_errors_are_400_in_openai_shape_before_money_moves(gateway, model, content, missing):
    before = gateway.balance()
    with pytest.raises(openai.BadRequestError) as excinfo:
        _oa(gateway).chat.completions.create(model=model, messages=[{"role": "user", "content": content}])
    assert excinfo.value.body["code"] == "model_capability_mismatch"
    assert missing in excinfo.value.message
    assert gateway.balance() == before


def test_chat_model_on_image_generation_endpoint_is_refused(gateway):
    with pytest.raises(openai.BadRequestError) as excinfo:
        _oa(gateway).images.generate(model="gpt-4o", prompt="a cat")
    assert excinfo.value.body["code"] == "model_capability_mismatch"


def test_image_generation_charged_per_image_for_dalle3(gateway):
    before = gateway.balance()
    result = _oa(gateway).images.generate(model="dall-e-3", prompt="a lighthouse", size="1024x1024")
    assert result.data
    (record,) = gateway.records()
    assert record.images_generated == 1
    assert record.cost_units == 40_000_000  # $0.04 per standard 1024×1024 image
    assert before - gateway.balance() == 40_000_000


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer nope"}, 401), ({"x-api-key": "mg-" + "z" * 43}, 401)],
)
def test_bad_keys_are_401_in_openai_shape(gateway, headers, status):
    response = httpx.post(
        gateway.openai_base + "/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        headers=headers,
    )
    assert response.status_code == status
    body = response.json()
    assert set(body["error"]) == {"message", "type", "code", "param"}
    assert "z" * 43 not in response.text


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[]", "invalid_json"),
        (b'{"model": "gpt-4o"}', "invalid_request"),
        (
            b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "max_tokens": -5}',
            "invalid_request",
        ),
        (
            b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "max_tokens": 999999999}',
            "max_tokens_too_large",
        ),
        (b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}', "model_not_found"),
        (
            b'{"model": "gpt-4o", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,!!!"}}]}]}',
            "invalid_image",
        ),
    ],
)
def test_bad_input_is_a_clear_4xx_and_charges_nothing(gateway, payload, code):
    before = gateway.balance()
    response = httpx.post(
        gateway.openai_base + "/chat/completions",
        content=payload,
        headers={"Authorization": f"Bearer {gateway.secret}", "Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500
    assert response.json()["error"]["code"] == code
    assert gateway.balance() == before
    assert gateway.records() == []


def test_billing_audit_is_clean_after_relay_traffic(gateway):
    from django.core.management import call_command

    _oa(gateway).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}], max_tokens=10
    )
    list(
        _oa(gateway).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}], max_tokens=10, stream=True
        )
    )
    gateway.wait_settled(2)
    call_command("billing_audit")  # raises SystemExit(non-zero) on any mismatch


def _png_bytes(size=(256, 256)) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, "green").save(buffer, "PNG")
    return buffer.getvalue()


def test_image_edit_multipart_is_charged_from_upstream_usage(gateway):
    before = gateway.balance()
    result = _oa(gateway).images.edit(
        model="gpt-image-1",
        image=("photo.png", _png_bytes(), "image/png"),
        prompt="add a hat",
        size="1024x1024",
    )
    assert result.data
    usage = result.usage
    details = usage.input_tokens_details
    # gpt-image-1: text input $5, image input $10, image output $40 per 1M tokens.
    expected = _cost(
        (details.text_tokens, 5_000_000_000),
        (details.image_tokens, 10_000_000_000),
        (usage.output_tokens, 40_000_000_000),
    )
    assert details.image_tokens > 0
    (record,) = gateway.records()
    assert (record.endpoint, record.cost_units) == ("images.edits", expected)
    assert before - gateway.balance() == expected


def test_image_edit_refuses_a_model_that_cannot_edit_and_bad_uploads(gateway):
    before = gateway.balance()
    with pytest.raises(openai.BadRequestError) as excinfo:
        _oa(gateway).images.edit(model="dall-e-3", image=("a.png", _png_bytes(), "image/png"), prompt="x")
    assert excinfo.value.body["code"] == "model_capability_mismatch"
    with pytest.raises(openai.BadRequestError) as excinfo:
        _oa(gateway).images.edit(
            model="gpt-image-1", image=("a.png", b"not an image", "image/png"), prompt="x"
        )
    assert excinfo.value.body["code"] == "invalid_image"
    assert gateway.balance() == before
