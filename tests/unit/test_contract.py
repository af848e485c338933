"""docs/contract.md is the contract's one home: it must name what the code defines — every
setting's environment variable, every CLI command and flag, every Redis key and record field."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from recstream.settings import Settings
from recstream.streams.keys import Keys
from recstream.streams.records import (
    CatalogItem,
    DeadLetter,
    Event,
    ModelUpdate,
    Recommendation,
)

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = (ROOT / "docs" / "contract.md").read_text()


def _cli_block() -> str:
    spec = importlib.util.spec_from_file_location("contract_cli", ROOT / "scripts/contract_cli.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.cli_block())


def test_the_cli_section_is_what_the_cli_defines() -> None:
    documented = re.search(r"<!-- cli:begin -->\n(.*)<!-- cli:end -->", CONTRACT, re.S)
    assert documented is not None, "docs/contract.md lost its cli:begin / cli:end markers"
    assert documented.group(1) == _cli_block(), (
        "docs/contract.md's command line differs from the CLI: regenerate the block with "
        "`.venv/bin/python scripts/contract_cli.py --write`"
    )


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_documented(field: str) -> None:
    assert f"`RECSTREAM_{field.upper()}`" in CONTRACT


def test_every_redis_key_is_documented() -> None:
    keys = Keys("<prefix>")
    made = [
        keys.stats(),
        keys.user("<user_id>"),
        keys.watermark("<topic>", "<partition>"),  # type: ignore[arg-type]
        keys.event_id("<user_id>", "<event_id>"),
        keys.layout(),
        keys.trending("<epoch>"),  # type: ignore[arg-type]
        keys.trending("<epoch>", "<category>"),  # type: ignore[arg-type]
        keys.catalog(),
        keys.catalog_version(),
        keys.metrics("<version>"),
        keys.metrics_items("<version>"),
        keys.metrics_versions(),
        keys.workers(),
    ]
    public = [name for name in vars(Keys) if not name.startswith("_")]
    assert len(public) == 12, "a new Keys method: add its key here and to docs/contract.md"
    missing = [key for key in made if f"`{key}`" not in CONTRACT]
    assert not missing, f"Redis keys missing from docs/contract.md: {missing}"


@pytest.mark.parametrize("record", [Event, Recommendation, DeadLetter, CatalogItem, ModelUpdate])
def test_every_record_field_is_documented(record: type) -> None:
    missing = [
        name
        for name in record.model_fields  # type: ignore[attr-defined]
        if f"`{name}`" not in CONTRACT and f'"{name}"' not in CONTRACT
    ]
    assert not missing, f"{record.__name__} fields missing from docs/contract.md: {missing}"
