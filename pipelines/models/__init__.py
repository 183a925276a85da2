"""The SQL layer: seeds and models under `sql/`, built into DuckDB in dependency order.

`load_project()` reads the files, `build(con, names)` (re)creates relations, and
`report_dictionary_markdown()` renders the report columns' documentation (the same texts the
database carries as column comments).
"""

from pipelines.models._docs import DISCREPANCY_TYPES, SEVERITIES, report_dictionary_markdown
from pipelines.models._project import (
    LAYERS,
    SQL_DIR,
    Model,
    ModelError,
    Project,
    Seed,
    load_project,
    project,
)
from pipelines.models._runner import BuildResult, build, relation_exists

__all__ = [
    "DISCREPANCY_TYPES",
    "LAYERS",
    "SEVERITIES",
    "SQL_DIR",
    "BuildResult",
    "Model",
    "ModelError",
    "Project",
    "Seed",
    "build",
    "load_project",
    "project",
    "relation_exists",
    "report_dictionary_markdown",
]
