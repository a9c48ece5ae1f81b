"""An S3 service on 127.0.0.1 for the S3 witness's tests: moto's server mode, with one
bucket that has object lock and one that has not, and an AWS environment that names only
that endpoint and made-up credentials (no profile, no instance metadata: nothing but
loopback is ever asked)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

# Made-up credentials, distinctive enough to find in any message that leaks them.
ACCESS_KEY = "AKIAWITNESSTEST00001"
SECRET_KEY = "witness-test-secret-9f3b2c"


@dataclass
class Buckets:
    endpoint: str
    locked: str  # created with object lock (and so versioning)
    plain: str  # without
    client: Any  # a boto3 S3 client on the endpoint, for the tests' own looks

    def spec(self, bucket: str, prefix: str = "sentrail/witness") -> str:
        return f"s3://{bucket}/{prefix}"


@contextmanager
def serve_s3() -> Iterator[str]:
    """moto's S3 on a free port of 127.0.0.1; its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: str) -> None:
    """Only the standard variables, pointing at loopback and the made-up credentials."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("SENTRAIL_WITNESS_S3_ENDPOINT", endpoint)
    for name in ("SENTRAIL_WITNESS_S3_RETENTION_DAYS", "SENTRAIL_WITNESS_S3_LOCK_MODE"):
        monkeypatch.delenv(name, raising=False)


def make_buckets(endpoint: str) -> Buckets:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    tag = uuid.uuid4().hex[:12]
    locked, plain = f"locked-{tag}", f"plain-{tag}"
    client.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)
    client.create_bucket(Bucket=plain)
    return Buckets(endpoint, locked, plain, client)


def versions(client: Any, bucket: str) -> list[dict[str, Any]]:
    """Every object version in ``bucket`` (delete markers apart)."""
    out: list[dict[str, Any]] = []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        out.extend(page.get("Versions", []))
    return out
