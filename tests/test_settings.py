"""Production settings refuse to start without their secrets; the embedded default needs nothing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _import_settings(module: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "FIELD_", "DATABASE_"))}
    clean.update(env)
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django, os; os.environ['DJANGO_SETTINGS_MODULE']='{module}'; django.setup()",
        ],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


GOOD = {
    "DJANGO_SECRET_KEY": "x" * 50,
    "DJANGO_ALLOWED_HOSTS": "gate.example.com",
    "FIELD_ENCRYPTION_KEY": "bW9kZWxnYXRlLWVtYmVkZGVkLWRlZmF1bHQta2V5ISE=",
}


@pytest.mark.parametrize("missing", sorted(GOOD))
def test_production_refuses_to_start_without(missing, tmp_path):
    env = {k: v for k, v in GOOD.items() if k != missing} | {"MODELGATE_DATA_DIR": str(tmp_path)}
    result = _import_settings("config.settings.production", env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert missing in result.stderr


def test_production_starts_with_its_secrets(tmp_path):
    result = _import_settings("config.settings.production", GOOD | {"MODELGATE_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr


def test_embedded_default_needs_no_configuration(tmp_path):
    result = _import_settings("config.settings.local", {"MODELGATE_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
