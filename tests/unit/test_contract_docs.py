"""The published JSON Schemas are the models' own: docs never drift from code."""

from __future__ import annotations

from pathlib import Path

import yaml

from workorder_pipeline.schemas.export import rendered_schemas

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_committed_json_schemas_match_the_models() -> None:
    for name, text in rendered_schemas().items():
        committed = (DOCS / "contracts" / name).read_text(encoding="utf-8")
        assert committed == text, f"docs/contracts/{name} is stale: run `bin/wo contracts export`"


def test_asyncapi_document_references_existing_schemas() -> None:
    document = yaml.safe_load((DOCS / "asyncapi.yaml").read_text(encoding="utf-8"))
    refs = [
        message["payload"]["$ref"]
        for message in document["components"]["messages"].values()
        if "$ref" in message.get("payload", {})
    ]
    assert refs, "the AsyncAPI document describes no message payloads"
    for ref in refs:
        assert (DOCS / ref).is_file(), f"asyncapi.yaml points at a missing schema {ref}"
