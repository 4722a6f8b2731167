"""Channels: keys encrypted at rest (and rotatable), never shown; env channels; routing order."""

from __future__ import annotations

import pickle

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from models_catalog.crypto import SecretDecryptionFailed
from models_catalog.models import Channel
from models_catalog.selectors import channels_for_model
from models_catalog.services import (
    channel_create,
    channel_keys_rotate,
    channel_record_failure,
    channel_record_success,
    channels_sync_from_env,
)

SECRET = "sk-live-THIS-IS-THE-PLAINTEXT-9f3a"


def test_key_is_encrypted_at_rest_and_round_trips(catalogue):
    channel = channel_create(name="primary", provider_type="openai", api_key=SECRET, model_ids=["gpt-4o"])
    stored = Channel.objects.values_list("api_key_ciphertext", flat=True).get(pk=channel.pk)
    assert stored
    assert stored != SECRET
    assert SECRET not in stored
    assert channel.api_key_hint == "…9f3a"
    [info] = channels_for_model("gpt-4o")
    assert info.api_key() == SECRET
    for text in (repr(info), str(info), repr(channel), str(channel), repr(pickle.dumps(info))):
        assert SECRET not in text
    assert stored not in repr(info)


def test_key_rotation(catalogue, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    channel = channel_create(
        name="rotating", provider_type="anthropic", api_key=SECRET, model_ids=["claude-haiku-4-5"]
    )
    before = Channel.objects.get(pk=channel.pk).api_key_ciphertext

    settings.FIELD_ENCRYPTION_KEYS = [new, old]  # new key first; old still decrypts
    assert channels_for_model("claude-haiku-4-5")[0].api_key() == SECRET
    assert channel_keys_rotate() == 1
    after = Channel.objects.get(pk=channel.pk).api_key_ciphertext
    assert after != before

    settings.FIELD_ENCRYPTION_KEYS = [new]  # the old key can now be dropped
    assert Fernet(new.encode()).decrypt(after.encode()).decode() == SECRET
    assert channels_for_model("claude-haiku-4-5")[0].api_key() == SECRET

    settings.FIELD_ENCRYPTION_KEYS = [old]  # and the old key alone no longer opens it
    with pytest.raises(SecretDecryptionFailed) as info:
        channels_for_model("claude-haiku-4-5")[0].api_key()
    assert SECRET not in str(info.value)
    assert after not in str(info.value)


def test_admin_never_shows_the_key(catalogue, client, django_user_model):
    admin_user = django_user_model.objects.create_superuser(email="root@example.com", password="pw-123456789")
    client.force_login(admin_user)
    channel = channel_create(
        name="shown", provider_type="openai", base_url="https://api.openai.com/v1", api_key=SECRET
    )
    ciphertext = Channel.objects.get(pk=channel.pk).api_key_ciphertext
    for url in (f"/admin/models_catalog/channel/{channel.pk}/change/", "/admin/models_catalog/channel/"):
        html = client.get(url).content.decode()
        assert "…9f3a" in html
        assert SECRET not in html
        assert ciphertext not in html

    new_secret = "sk-rotated-NEW-PLAINTEXT-77aa"
    response = client.post(
        f"/admin/models_catalog/channel/{channel.pk}/change/",
        {
            "name": "shown",
            "provider_type": "openai",
            "base_url": "https://api.openai.com/v1",
            "priority": "5",
            "weight": "1",
            "enabled": "on",
            "new_api_key": new_secret,
            "channel_models-TOTAL_FORMS": "0",
            "channel_models-INITIAL_FORMS": "0",
            "channel_models-MIN_NUM_FORMS": "0",
            "channel_models-MAX_NUM_FORMS": "1000",
            "_continue": "1",
        },
        follow=True,
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert new_secret not in html
    assert SECRET not in html
    channel.refresh_from_db()
    assert channel.priority == 5
    assert channel.api_key_hint == "…77aa"
    from models_catalog import crypto

    assert crypto.decrypt(channel.api_key_ciphertext) == new_secret


def test_channels_ordered_by_priority_enabled_only(catalogue):
    channel_create(name="backup", provider_type="openai", api_key="k1-abcd", model_ids=["gpt-4o"], priority=0)
    channel_create(
        name="main",
        provider_type="openai",
        api_key="k2-efgh",
        model_ids=["gpt-4o", "gpt-4o-mini"],
        upstream_models={"gpt-4o": "gpt-4o-2024-11-20"},
        priority=10,
        weight=3,
    )
    channel_create(
        name="off", provider_type="openai", api_key="k3", model_ids=["gpt-4o"], priority=99, enabled=False
    )
    channels = channels_for_model("gpt-4o")
    assert [c.name for c in channels] == ["main", "backup"]
    assert channels[0].upstream_model("gpt-4o") == "gpt-4o-2024-11-20"
    assert channels[0].upstream_model("gpt-4o-mini") == "gpt-4o-mini"
    assert [c.name for c in channels_for_model("gpt-4o-mini")] == ["main"]
    assert channels_for_model("gemini-2.5-pro") == []


def test_health_updates(catalogue):
    channel = channel_create(name="flaky", provider_type="openai", api_key="k-0000", model_ids=["gpt-4o"])
    channel_record_failure(channel_id=channel.pk, error="503 upstream", cooldown_seconds=60)
    [info] = channels_for_model("gpt-4o")
    assert info.in_cooldown()
    assert info.consecutive_failures == 1
    channel_record_success(channel_id=channel.pk)
    [info] = channels_for_model("gpt-4o")
    assert not info.in_cooldown()
    assert info.consecutive_failures == 0


def test_channels_from_env_are_idempotent(catalogue):
    env = {
        "OPENAI_API_KEY": "sk-openai-1111",
        "ANTHROPIC_API_KEY": "sk-ant-2222",
        "ANTHROPIC_BASE_URL": "https://anthropic.example.com",
        "XAI_API_KEY": "xai-3333",
        "DASHSCOPE_API_KEY": "ds-4444",
    }
    assert channels_sync_from_env(env) == {
        "env:openai": "created",
        "env:anthropic": "created",
        "env:xai": "created",
        "env:alibaba": "created",
    }
    assert channels_sync_from_env(env) == dict.fromkeys(
        ["env:openai", "env:anthropic", "env:xai", "env:alibaba"], "unchanged"
    )
    [xai] = channels_for_model("grok-2-vision-1212")
    assert xai.name == "env:xai"
    assert xai.base_url == "https://api.x.ai/v1"
    assert xai.api_key() == "xai-3333"
    [ant] = channels_for_model("claude-haiku-4-5")
    assert ant.provider_type == "anthropic"
    assert ant.base_url == "https://anthropic.example.com"
    [qwen] = channels_for_model("qwen-vl-plus")
    assert qwen.base_url == "https://dashscope.aliyuncs.com/compatible-mode/v1"
    assert {c.name for c in channels_for_model("dall-e-3")} == {"env:openai"}
    assert channels_for_model("gemini-2.5-flash") == []

    env["OPENAI_API_KEY"] = "sk-openai-5555"
    del env["ANTHROPIC_API_KEY"]
    result = channels_sync_from_env(env)
    assert result["env:openai"] == "updated"
    assert result["env:anthropic"] == "disabled"
    assert channels_for_model("gpt-4o")[0].api_key() == "sk-openai-5555"
    assert channels_for_model("claude-haiku-4-5") == []
    assert Channel.objects.filter(name__startswith="env:").count() == 4  # disabled, not deleted


def test_env_command(catalogue, monkeypatch, capsys):
    for name in ("OPENAI", "ANTHROPIC", "XAI", "DASHSCOPE", "GEMINI"):
        monkeypatch.delenv(f"{name}_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", "gm-9999")
    call_command("catalogue_sync_env_channels")
    assert "env:google: created" in capsys.readouterr().out
    [gemini] = channels_for_model("gemini-2.5-pro")
    assert gemini.base_url == "https://generativelanguage.googleapis.com/v1beta/openai/"
    call_command("catalogue_sync_env_channels")
    assert "env:google: unchanged" in capsys.readouterr().out
