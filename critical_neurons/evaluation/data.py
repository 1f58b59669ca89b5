"""Dataset rows from a hub id, a local folder, or a json/jsonl(.gz)/parquet/csv file, through ``datasets``."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from critical_neurons.errors import UsageError

logger = logging.getLogger(__name__)

FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


def _builder(path: Path) -> str | None:
    suffixes = [suffix for suffix in path.suffixes if suffix != ".gz"]
    return FILE_BUILDERS.get(suffixes[-1]) if suffixes else None


def load_rows(
    source: str, *, config: str | None = None, split: str = "test", data_files: str | None = None, flag: str = "--dataset_path"
) -> list[dict[str, Any]]:
    """Rows as dicts. Local files and folders work offline; anything else is a hub id (``data_files`` picks files in it)."""
    import datasets

    path = Path(source).expanduser()
    try:
        if path.is_file():
            builder = _builder(path)
            if builder is None:
                raise UsageError(flag, f"{source} is not a .json, .jsonl, .parquet or .csv file (optionally .gz)", "convert it or pass a hub id")
            dataset = datasets.load_dataset(builder, data_files=str(path), split="train")
        elif path.is_dir():
            if (path / "dataset_info.json").is_file() or (path / "state.json").is_file():
                dataset = datasets.load_from_disk(str(path))
                if isinstance(dataset, datasets.DatasetDict):
                    dataset = dataset[split]
            else:
                dataset = datasets.load_dataset(str(path), config, split=split)
        elif source.startswith((".", "/", "~")) or path.suffix:
            raise UsageError(flag, f"{source} does not exist", "pass an existing file or folder, or a hub dataset id")
        elif data_files:
            dataset = datasets.load_dataset(source, data_files=data_files, split="train")
        else:
            dataset = datasets.load_dataset(source, config, split=split)
    except UsageError:
        raise
    except Exception as error:  # datasets raises many types (network, schema, builder errors)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(flag, f"cannot read {source} ({type(error).__name__}: {reason[:200]})", "check the path or hub id, or pass a local json/jsonl/parquet/csv file") from None
    rows = [dict(row) for row in dataset]
    logger.info("Loaded %d rows from %s", len(rows), source)
    return rows


TEXT = (str, int, float)  # a scalar the prompt can show (CSV readers turn numeric columns into numbers)
OPTIONAL_TEXT = (str, type(None))
Schema = Mapping[str, type | tuple[type, ...]] | Sequence[str]


def require_fields(rows: Sequence[dict[str, Any]], schema: Schema, source: str, flag: str = "--dataset_path") -> None:
    """Every row has every field, with a value of the expected type (a list of names means: present, not null).

    All rows are checked, not only the first: a bad row deep in the file would otherwise fail (or be
    mis-scored) only after hours of generation. The error names the row, the field and the fix.
    """
    if not rows:
        raise UsageError(flag, f"{source} has no rows", "pass a non-empty dataset")
    types = dict(schema) if isinstance(schema, Mapping) else dict.fromkeys(schema, object)
    missing = [field for field in types if field not in rows[0]]
    if missing:
        raise UsageError(flag, f"{source} lacks the field(s) {', '.join(missing)} (it has {', '.join(list(rows[0])[:12])})", "pass data in the benchmark's schema")
    for index, row in enumerate(rows):
        for field, expected in types.items():
            if field not in row:
                raise UsageError(flag, f"{source} row {index} lacks the field {field}", "pass data in the benchmark's schema")
            value = row[field]
            if (value is None and expected is object) or isinstance(value, bool) or not isinstance(value, expected):
                raise UsageError(flag, f"{source} row {index}: field {field} is {type(value).__name__} {str(value)[:40]!r}, not {_type_names(expected)}", "fix that row")


def _type_names(expected: type | tuple[type, ...]) -> str:
    names = [kind.__name__ for kind in (expected if isinstance(expected, tuple) else (expected,))]
    return "a value" if names == ["object"] else " or ".join("null" if name == "NoneType" else name for name in names)


def subsample(rows: list[Any], size: int | None, seed: int, flag: str = "--max_samples") -> list[Any]:
    """A seeded random subset of ``size`` rows (all rows when size is None or at least the row count)."""
    if size is None or size >= len(rows):
        return rows
    if size < 1:
        raise UsageError(flag, f"must be at least 1, got {size}", "omit it to use every sample")
    return random.Random(seed).sample(rows, size)
