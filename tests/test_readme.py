"""The README's report dictionary is the text the database carries in COMMENT ON."""

from pathlib import Path

from pipelines.models import report_dictionary_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_report_dictionary_matches_the_models() -> None:
    assert report_dictionary_markdown().strip() in README.read_text(encoding="utf-8")
