from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sentrail.engine.config import EngineConfig
from sentrail.model.decode import decode_run
from sentrail.siem.records import Record, records_from_run
from tests.alerts.conftest import clock, stub, waits
from tests.conftest import EXAMPLES

__all__ = ["clock", "example_records", "ocsf_validators", "stub", "waits"]

POLICY = str(EXAMPLES / "policy.yaml")


def analysed_records(path: Path) -> list[Record]:
    engine = EngineConfig(policy_path=POLICY).build()
    run = decode_run(path.read_bytes())
    return records_from_run(run, engine.analyze(run), fallback_ms=0, trace_hash="0" * 64)


@pytest.fixture(scope="session")
def example_records() -> list[Record]:
    out: list[Record] = []
    for path in sorted((EXAMPLES / "traces").glob("*.json")):
        if path.name != "truncated.json":
            out.extend(analysed_records(path))
    return out


@pytest.fixture(scope="session")
def ocsf_validators() -> dict[int, Any]:
    """JSON Schema validators for OCSF 1.5.0 Detection Finding and API Activity, generated
    from the OCSF schema that the ocsf-json-schema package ships."""
    from jsonschema import Draft202012Validator
    from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version="1.5.0"))
    out = {}
    for uid in (2004, 6003):
        name = schema.lookup_class_name_from_uid(class_uid=uid)
        js = schema.get_class_schema(class_name=name, profiles=[])
        Draft202012Validator.check_schema(js)
        out[uid] = Draft202012Validator(js)
    return out


def as_json(doc: Any) -> Any:
    """``doc`` as a consumer reads it back: through the same encoder the export uses."""
    return json.loads(msgspec.json.encode(doc))
