"""The S3 witness: every checkpoint a new object in an S3-compatible bucket.

Spec ``s3://BUCKET[/PREFIX]`` (in ``$SENTRAIL_WITNESS`` or ``log verify --witness``). The
endpoint is ``$SENTRAIL_WITNESS_S3_ENDPOINT`` when set, else what the standard AWS
environment and config say (``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, the profile);
region and credentials come from the standard AWS chain and are never put in a message.

1. Each checkpoint is one object, ``PREFIX/TENANT/SIZE-ROOT`` (the tenant id with every
   byte outside ``[A-Za-z0-9_-]`` percent-encoded, the size zero-padded to 20 digits so
   the keys sort by size, the root in hex): two checkpoints never share a key, and the
   same checkpoint pushed twice names the same key.
2. The object is written with ``If-None-Match: *``: the bucket refuses to replace an
   object that exists (412), which the push takes as "already recorded".
3. When the bucket has object lock, each object is locked: ``$SENTRAIL_WITNESS_S3_RETENTION_DAYS``
   days in ``$SENTRAIL_WITNESS_S3_LOCK_MODE`` (``COMPLIANCE``, the default, or
   ``GOVERNANCE``) when the retention is set; else the bucket's default retention rule,
   if it has one; else 365 days in that mode. A bucket without object lock is said once,
   in a warning, by each process that writes to it: whoever holds write access to it can
   delete or replace what it holds.
4. The reader lists every *version* under ``PREFIX/TENANT/`` (falling back to the current
   objects where the service has no version listing), so a delete marker or a newer
   version put over a locked object does not hide the checkpoint it holds.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

import boto3
import botocore.exceptions
from botocore.config import Config

from sentrail.evidence.checkpoint import Checkpoint as TreeHead
from sentrail.evidence.note import MAX_NOTE_BYTES, split_note
from sentrail.store.base import Checkpoint
from sentrail.store.witness import TIMEOUT_S, WitnessError, WitnessUnreachable

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import PutObjectRequestTypeDef

    from sentrail.store.core import LogStore

log = logging.getLogger("sentrail.witness")

ENDPOINT_ENV = "SENTRAIL_WITNESS_S3_ENDPOINT"
RETENTION_ENV = "SENTRAIL_WITNESS_S3_RETENTION_DAYS"
MODE_ENV = "SENTRAIL_WITNESS_S3_LOCK_MODE"
DEFAULT_RETENTION_DAYS = 365
MAX_RETENTION_DAYS = 36_500
SPEC_FORM = "an S3 witness is s3://BUCKET[/PREFIX]"
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_KEEP = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")
LockMode = Literal["COMPLIANCE", "GOVERNANCE"]


def tenant_segment(tenant: str) -> str:
    """``tenant`` as one key segment: readable, never ``/``, ``.`` or ``..``, one-to-one."""
    return "".join(chr(b) if b in _KEEP else f"%{b:02X}" for b in tenant.encode())


def _scrub(text: str) -> str:
    """Text without user information in URLs (``scheme://user:secret@host``)."""
    return _USERINFO.sub("***@", text)


def parse_spec(spec: str) -> tuple[str, str]:
    """The bucket and the key prefix (no slash at either end) of ``s3://BUCKET[/PREFIX]``."""
    shown = _scrub(spec)
    parts = urllib.parse.urlsplit(spec)
    if parts.scheme != "s3" or parts.query or parts.fragment or "@" in parts.netloc:
        raise WitnessError(SPEC_FORM, shown)
    if not _BUCKET.fullmatch(parts.netloc) or ".." in parts.netloc:
        raise WitnessError(f"{SPEC_FORM}: {parts.netloc!r} is not a bucket name", shown)
    prefix = parts.path.strip("/")
    if any(not seg or seg in (".", "..") for seg in prefix.split("/") if prefix) or any(
        ord(c) < 0x20 or c == "\x7f" for c in prefix
    ):
        raise WitnessError(f"{SPEC_FORM}: the prefix {prefix!r} is not a clean key path", shown)
    return parts.netloc, prefix


def _retention() -> tuple[int | None, LockMode]:
    raw_days = os.environ.get(RETENTION_ENV, "").strip()
    days: int | None = None
    if raw_days:
        if not raw_days.isdigit() or not 1 <= int(raw_days) <= MAX_RETENTION_DAYS:
            raise WitnessError(
                f"a whole number of days from 1 to {MAX_RETENTION_DAYS}", RETENTION_ENV
            )
        days = int(raw_days)
    mode = os.environ.get(MODE_ENV, "COMPLIANCE").strip().upper()
    if mode == "COMPLIANCE":
        return days, "COMPLIANCE"
    if mode == "GOVERNANCE":
        return days, "GOVERNANCE"
    raise WitnessError("COMPLIANCE or GOVERNANCE", MODE_ENV)


class S3Witness:
    """Checkpoints kept as objects of an S3-compatible bucket (module docstring)."""

    def __init__(self, spec: str) -> None:
        self.bucket, self.prefix = parse_spec(spec)
        self.name = f"witness s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.days, self.mode = _retention()
        self.endpoint = os.environ.get(ENDPOINT_ENV, "").strip() or None
        self._session: boto3.session.Session | None = None
        self._client: S3Client | None = None
        self._asked = False  # whether the bucket's object lock was asked for yet
        self._locking: tuple[int, LockMode] | None = None
        self._lock = threading.Lock()

    # -- naming -----------------------------------------------------------------------
    def tenant_prefix(self, tenant: str) -> str:
        head = f"{self.prefix}/" if self.prefix else ""
        return f"{head}{tenant_segment(tenant)}/"

    def key(self, tenant: str, size: int, root: bytes) -> str:
        return f"{self.tenant_prefix(tenant)}{size:020d}-{root.hex()}"

    # -- the client -------------------------------------------------------------------
    def client(self) -> S3Client:
        with self._lock:
            if self._client is None:
                config = Config(
                    connect_timeout=TIMEOUT_S,
                    read_timeout=TIMEOUT_S,
                    retries={"mode": "standard", "max_attempts": 3},
                )
                try:
                    self._session = boto3.session.Session()
                    self._client = self._session.client(
                        "s3", endpoint_url=self.endpoint, config=config
                    )
                except (botocore.exceptions.BotoCoreError, ValueError) as exc:
                    raise self._failure("cannot set up the S3 client", exc) from None
            return self._client

    def _scrubbed(self, text: str) -> str:
        """``text`` without URL user information, nor the credentials the client holds
        (S3's messages carry none that we know of: this makes sure)."""
        text = _scrub(text)
        if self._session is None or self._client is None:
            return text  # never resolve credentials just to write a message
        try:
            held = self._session.get_credentials()  # resolved with the client: no lookup
            frozen = held.get_frozen_credentials() if held is not None else None
        except Exception:
            return text
        for secret in (frozen.access_key, frozen.secret_key, frozen.token) if frozen else ():
            if secret:
                text = text.replace(secret, "***")
        return text

    def _failure(self, doing: str, exc: Exception) -> WitnessError:
        """A located error that names the S3 error code and message, never a credential."""
        if isinstance(exc, botocore.exceptions.ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", "?"))
            if code == "NoSuchBucket":
                return WitnessUnreachable(f"{doing}: no bucket {self.bucket!r}", self.name)
            said = str(err.get("Message", "")) or "no message"
            return WitnessUnreachable(f"{doing}: {code}: {self._scrubbed(said)}", self.name)
        if isinstance(
            exc,
            botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError,
        ):
            return WitnessUnreachable(
                f"{doing}: no usable AWS credentials (environment, shared files, profile "
                "or instance role)",
                self.name,
            )
        return WitnessUnreachable(f"{doing}: {self._scrubbed(str(exc))}", self.name)

    # -- writing ----------------------------------------------------------------------
    def _lock_settings(self, s3: S3Client) -> tuple[int, LockMode] | None:
        """How long and how to lock each object (None: no per-object lock), asked once."""
        with self._lock:
            if self._asked:
                return self._locking
        try:
            conf = s3.get_object_lock_configuration(Bucket=self.bucket)["ObjectLockConfiguration"]
            enabled = conf.get("ObjectLockEnabled") == "Enabled"
            has_default = "DefaultRetention" in conf.get("Rule", {})
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code != "ObjectLockConfigurationNotFoundError":
                raise self._failure("cannot read the bucket's object lock", exc) from None
            enabled = has_default = False
        except botocore.exceptions.BotoCoreError as exc:
            raise self._failure("cannot read the bucket's object lock", exc) from None
        settings: tuple[int, LockMode] | None = None
        if not enabled:
            log.warning(
                "%s: the bucket has no object lock: whoever can write to it can delete or "
                "replace the checkpoints it holds",
                self.name,
            )
        elif self.days is not None or not has_default:
            settings = (self.days or DEFAULT_RETENTION_DAYS, self.mode)
        with self._lock:
            self._asked, self._locking = True, settings
        return settings

    def push(self, store: LogStore, cp: Checkpoint) -> None:
        """Write ``cp`` as a new object; one that is already there stays as it is."""
        head = TreeHead.parse(split_note(cp.note)[0])
        s3 = self.client()
        lock = self._lock_settings(s3)
        request: PutObjectRequestTypeDef = {
            "Bucket": self.bucket,
            "Key": self.key(cp.tenant_id, head.size, head.root_hash),
            "Body": cp.note.encode(),
            "ContentType": "text/plain; charset=utf-8",
            "IfNoneMatch": "*",
        }
        if lock is not None:
            request["ObjectLockMode"] = lock[1]
            request["ObjectLockRetainUntilDate"] = datetime.now(UTC) + timedelta(days=lock[0])
        try:
            s3.put_object(**request)
        except botocore.exceptions.ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exc.response.get("Error", {}).get("Code", "")
            if status == 412 or code == "PreconditionFailed":
                return  # this checkpoint is recorded already, and was not replaced
            raise self._failure(f"cannot write checkpoint {head.size}", exc) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._failure(f"cannot write checkpoint {head.size}", exc) from None

    # -- reading ----------------------------------------------------------------------
    def _listed(self, s3: S3Client, prefix: str) -> list[tuple[str, str | None]]:
        """(key, version id or None) of every object version under ``prefix``, by key."""
        found: list[tuple[str, str | None]] = []
        try:
            for page in s3.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                for v in page.get("Versions", []):
                    vid = v.get("VersionId")
                    found.append((v["Key"], None if vid in (None, "null") else vid))
            return sorted(found, key=lambda kv: (kv[0], kv[1] or ""))
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in ("NotImplemented", "MethodNotAllowed", "501"):
                raise self._failure("cannot list the checkpoints", exc) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._failure("cannot list the checkpoints", exc) from None
        try:  # a service without version listing: the current objects
            for current in s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                found.extend((o["Key"], None) for o in current.get("Contents", []))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._failure("cannot list the checkpoints", exc) from None
        return sorted(found, key=lambda kv: kv[0])

    def _read(self, s3: S3Client, key: str, version: str | None) -> str:
        try:
            if version is None:
                answer = s3.get_object(Bucket=self.bucket, Key=key)
            else:
                answer = s3.get_object(Bucket=self.bucket, Key=key, VersionId=version)
            body = answer["Body"]
            try:
                data = body.read(MAX_NOTE_BYTES + 1)
            finally:
                body.close()
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._failure(f"cannot read {key}", exc) from None
        if len(data) > MAX_NOTE_BYTES:
            raise WitnessError(f"{key} is larger than a checkpoint", self.name)
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise WitnessError(f"{key} is not UTF-8 text", self.name) from None

    def notes(self, tenant: str) -> list[str]:
        """Every checkpoint of ``tenant`` the bucket holds, by size (each version once)."""
        s3 = self.client()
        return [self._read(s3, k, v) for k, v in self._listed(s3, self.tenant_prefix(tenant))]
