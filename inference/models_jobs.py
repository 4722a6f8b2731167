"""Jobs: uploaded files, OpenAI-style batches (one row per line) and compare jobs.

Data and constraints only; every write goes through ``inference.jobs`` services.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

__all__ = [
    "Batch",
    "BatchLine",
    "BatchStatus",
    "CompareJob",
    "CompareResult",
    "CompareStatus",
    "JobFile",
    "LineStatus",
]


class JobFile(models.Model):
    """A file of ``/v1/files`` (batch input, batch output/error), stored via the ``jobs`` storage."""

    public_id = models.CharField(max_length=40, unique=True)  # file-…
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    purpose = models.CharField(max_length=32)  # batch | batch_output
    filename = models.CharField(max_length=255)
    bytes = models.BigIntegerField()
    storage_name = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="jobfile_org_time")]

    def __str__(self) -> str:
        return f"{self.public_id} {self.filename}"


class BatchStatus(models.TextChoices):
    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


ACTIVE_BATCH_STATUSES = (
    BatchStatus.VALIDATING,
    BatchStatus.IN_PROGRESS,
    BatchStatus.FINALIZING,
    BatchStatus.CANCELLING,
)


class Batch(models.Model):
    public_id = models.CharField(max_length=40, unique=True)  # batch_…
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    # The key that created the batch: its lines are charged through it (spend cap, allowlist).
    api_key = models.ForeignKey("accounts.ApiKey", null=True, on_delete=models.SET_NULL, related_name="+")
    endpoint = models.CharField(max_length=48)
    completion_window = models.CharField(max_length=8, default="24h")
    input_file = models.ForeignKey(JobFile, null=True, on_delete=models.SET_NULL, related_name="+")
    input_file_public_id = models.CharField(max_length=40)
    output_file = models.ForeignKey(JobFile, null=True, on_delete=models.SET_NULL, related_name="+")
    error_file = models.ForeignKey(JobFile, null=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=16, choices=BatchStatus.choices, default=BatchStatus.VALIDATING)
    errors = models.JSONField(null=True, blank=True)  # OpenAI ``errors`` object (validation failures)
    metadata = models.JSONField(null=True, blank=True)
    total_lines = models.IntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    in_progress_at = models.DateTimeField(null=True, blank=True)
    finalizing_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    cancelling_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # Execution bookkeeping: one run chain per token; a lease while a worker runs a chunk.
    run_token = models.CharField(max_length=32, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="batch_org_time"),
            models.Index(fields=["status", "lease_until"], name="batch_status_lease"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.status}"


class LineStatus(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"  # a 2xx response (in the output file)
    FAILED = "failed"  # an error response or an error (in the error file)
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class BatchLine(models.Model):
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="lines")
    line_no = models.IntegerField()  # 1-based line of the input file
    custom_id = models.CharField(max_length=512)
    body = models.JSONField()
    # The relay request id: the ledger idempotency key ``usage:<request_id>`` and the
    # UsageRecord's unique request_id. Fixed per line, so a re-run can never charge twice.
    request_id = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=16, choices=LineStatus.choices, default=LineStatus.PENDING)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)  # JSON as the relay returned it
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    usage_record_id = models.BigIntegerField(null=True, blank=True)
    cost_units = models.BigIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "line_no"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "line_no"], name="batchline_batch_line"),
            models.UniqueConstraint(fields=["batch", "custom_id"], name="batchline_batch_custom_id"),
        ]
        indexes = [models.Index(fields=["batch", "status", "line_no"], name="batchline_batch_status")]

    def __str__(self) -> str:
        return f"{self.request_id} {self.status}"


class CompareStatus(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class CompareJob(models.Model):
    public_id = models.CharField(max_length=40, unique=True)  # cmp_…
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    api_key = models.ForeignKey("accounts.ApiKey", null=True, on_delete=models.SET_NULL, related_name="+")
    prompt = models.TextField()
    image = models.TextField(blank=True)  # a data: URL, or empty
    max_tokens = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="compare_org_time")]

    def __str__(self) -> str:
        return self.public_id


class CompareResult(models.Model):
    job = models.ForeignKey(CompareJob, on_delete=models.CASCADE, related_name="results")
    position = models.PositiveSmallIntegerField()
    model = models.CharField(max_length=128)
    request_id = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=16, choices=CompareStatus.choices, default=CompareStatus.PENDING)
    output = models.TextField(blank=True)
    latency_ms = models.IntegerField(null=True, blank=True)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost_units = models.BigIntegerField(default=0)
    usage_record_id = models.BigIntegerField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "position"]
        constraints = [models.UniqueConstraint(fields=["job", "position"], name="compareresult_job_pos")]

    def __str__(self) -> str:
        return f"{self.job_id}:{self.model} {self.status}"
