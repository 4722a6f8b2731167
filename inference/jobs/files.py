"""``/v1/files``: uploads and job output files, through Django's storage API (the ``jobs`` storage).

Local folder under MEDIA_ROOT by default; any Django storage backend (e.g. django-storages'
S3 backend for an S3-compatible bucket) by configuration — see docs/jobs.md.
"""

from __future__ import annotations

import secrets
from typing import IO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages
from django.db import transaction

from ..errors import InvalidRequest
from ..models_jobs import JobFile
from .errors import JobNotFound

PURPOSE_BATCH = "batch"
PURPOSE_BATCH_OUTPUT = "batch_output"
UPLOAD_PURPOSES = (PURPOSE_BATCH,)


def jobs_storage():
    return storages["jobs"]


def _new_file_id() -> str:
    return "file-" + secrets.token_hex(12)


def _storage_name(org_id: int, public_id: str) -> str:
    return f"jobs/org-{org_id}/{public_id}.jsonl"


def _check_jsonl(head: bytes) -> None:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            raise InvalidRequest(
                "A batch file must be UTF-8 JSONL (one JSON object per line).",
                code="invalid_file_format",
                extra={"param": "file"},
            ) from None
    first = head.lstrip()[:1]
    if first and first != b"{":
        raise InvalidRequest(
            "A batch file must be JSONL: each line one JSON request object.",
            code="invalid_file_format",
            extra={"param": "file"},
        )


def file_create(*, org_id: int, purpose: str, filename: str, content: IO[bytes], size: int) -> JobFile:
    """Store an uploaded file for the organization (size-limited; batch files must look like JSONL)."""
    if purpose not in UPLOAD_PURPOSES:
        raise InvalidRequest(
            f"purpose must be one of: {', '.join(UPLOAD_PURPOSES)}.", extra={"param": "purpose"}
        )
    if size > settings.JOBS_FILE_MAX_BYTES:
        raise InvalidRequest(
            f"The file is {size} bytes; the limit is {settings.JOBS_FILE_MAX_BYTES}.",
            status=413,
            code="file_too_large",
            extra={"param": "file"},
        )
    if size == 0:
        raise InvalidRequest("The file is empty.", code="invalid_file_format", extra={"param": "file"})
    content.seek(0)
    _check_jsonl(content.read(4096))
    content.seek(0)
    public_id = _new_file_id()
    name = jobs_storage().save(_storage_name(org_id, public_id), File(content))
    try:
        return JobFile.objects.create(
            public_id=public_id,
            organization_id=org_id,
            purpose=purpose,
            filename=(filename or "upload.jsonl")[:255],
            bytes=size,
            storage_name=name,
        )
    except Exception:
        jobs_storage().delete(name)
        raise


def file_store_output(*, org_id: int, filename: str, name: str, content: IO[bytes]) -> JobFile:
    """A job's output file, under a deterministic ``name`` (a re-run overwrites, never duplicates)."""
    storage = jobs_storage()
    if storage.exists(name):
        storage.delete(name)
    content.seek(0, 2)
    size = content.tell()
    content.seek(0)
    stored = storage.save(name, File(content))
    return JobFile.objects.create(
        public_id=_new_file_id(),
        organization_id=org_id,
        purpose=PURPOSE_BATCH_OUTPUT,
        filename=filename,
        bytes=size,
        storage_name=stored,
    )


def file_get(*, org_id: int, public_id: str) -> JobFile:
    """The organization's file; another organization's id is a 404 like an unknown one."""
    found = JobFile.objects.filter(organization_id=org_id, public_id=public_id).first()
    if found is None:
        raise JobNotFound(f"No such File object: {public_id}", extra={"param": "file_id"})
    return found


def files_for_org(*, org_id: int, purpose: str | None = None):
    qs = JobFile.objects.filter(organization_id=org_id)
    if purpose:
        qs = qs.filter(purpose=purpose)
    return qs


def file_open(*, file: JobFile) -> IO[bytes]:
    return jobs_storage().open(file.storage_name, "rb")


def file_delete(*, org_id: int, public_id: str) -> str:
    found = file_get(org_id=org_id, public_id=public_id)
    name = found.storage_name
    with transaction.atomic():
        found.delete()
        transaction.on_commit(lambda: jobs_storage().delete(name))
    return public_id
