"""docs/configuration.md's key table is the settings schema's: generated, never edited by hand."""

from __future__ import annotations

from pathlib import Path

from collector.config.loading import env_name, schema
from collector.config.reference import rewritten, table

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_page_holds_the_table_the_schema_generates() -> None:
    """A key added, renamed or re-described without regenerating the page fails here."""
    text = PAGE.read_text(encoding="utf-8")
    assert rewritten(text) == text, (
        "docs/configuration.md is stale: python -m collector.config.reference docs/configuration.md"
    )


def test_the_table_has_a_row_per_key_with_its_variable() -> None:
    """Every dotted key, its COLLECTOR_* variable and default are in the table."""
    rows = [line for line in table().splitlines() if line.startswith("| `")]
    assert len(rows) == len(schema())
    for key, row in zip(schema(), rows, strict=True):
        assert row.startswith(f"| `{key}` |") and f"`{env_name(key)}`" in row
