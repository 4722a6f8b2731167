"""/v1/files with the official openai SDK: upload, list, retrieve, content, delete, limits."""

from __future__ import annotations

import pytest
from openai import AuthenticationError, BadRequestError, NotFoundError, OpenAI

from inference.jobs.files import jobs_storage
from inference.models import JobFile

from .helpers import chat_line, jsonl

pytestmark = pytest.mark.django_db(transaction=True)


def test_upload_list_retrieve_content_delete(gateway):
    client = OpenAI(api_key=gateway.secret, base_url=gateway.openai_base, max_retries=0)
    raw = jsonl([chat_line(i) for i in range(3)])
    created = client.files.create(file=("input.jsonl", raw), purpose="batch")
    assert created.id.startswith("file-")
    assert (created.object, created.purpose, created.bytes, created.filename) == (
        "file",
        "batch",
        len(raw),
        "input.jsonl",
    )
    assert client.files.retrieve(created.id).bytes == len(raw)
    assert [f.id for f in client.files.list()] == [created.id]
    assert [f.id for f in client.files.list(purpose="batch_output")] == []
    assert client.files.content(created.id).content == raw
    stored = JobFile.objects.get(public_id=created.id)
    assert jobs_storage().exists(stored.storage_name)
    deleted = client.files.delete(created.id)
    assert deleted.deleted is True
    assert deleted.id == created.id
    assert not jobs_storage().exists(stored.storage_name)
    with pytest.raises(NotFoundError):
        client.files.retrieve(created.id)


def test_x_api_key_header_works_and_no_key_is_401(gateway):
    import httpx

    r = httpx.get(gateway.openai_base + "/files", headers={"x-api-key": gateway.secret})
    assert r.status_code == 200
    assert r.json()["object"] == "list"
    r = httpx.get(gateway.openai_base + "/files")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(AuthenticationError):
        OpenAI(api_key="mg-" + "x" * 43, base_url=gateway.openai_base, max_retries=0).files.list()


def test_size_limit_purpose_and_format(gateway, settings):
    client = OpenAI(api_key=gateway.secret, base_url=gateway.openai_base, max_retries=0)
    settings.JOBS_FILE_MAX_BYTES = 1000
    with pytest.raises(Exception) as too_big:
        client.files.create(file=("big.jsonl", jsonl([chat_line(i) for i in range(50)])), purpose="batch")
    assert getattr(too_big.value, "status_code", None) == 413
    with pytest.raises(BadRequestError, match="purpose"):
        client.files.create(file=("x.jsonl", jsonl([chat_line(0)])), purpose="fine-tune")
    with pytest.raises(BadRequestError, match="JSONL"):
        client.files.create(file=("x.csv", b"a,b,c\n1,2,3\n"), purpose="batch")
    assert not JobFile.objects.exists()
