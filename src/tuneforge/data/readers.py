"""Read rows from json, jsonl, csv and parquet files, remembering where each row came from (for error messages)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tuneforge.config.messages import Msg
from tuneforge.errors import DataError

EXTENSIONS = (".json", ".jsonl", ".csv", ".parquet")
Row = tuple[str, dict[str, Any]]  # (where: "file:line N", row)


def _json_error(path: Path, e: json.JSONDecodeError, line_offset: int = 0) -> DataError:
    return DataError(Msg("catalog_invalid_json", path=str(path), line=e.lineno + line_offset, column=e.colno,
                         error=e.msg), Msg("data_json_line_fix"))


def _read_json(path: Path) -> Iterator[Row]:
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if not stripped.startswith("["):
        if stripped.startswith("{") and "\n{" in stripped:  # JSON lines saved with a .json name
            yield from _read_jsonl(path)
            return
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise _json_error(path, e) from None
        raise DataError(Msg("data_json_not_array", path=str(path), kind=type(obj).__name__),
                        Msg("data_json_not_array_fix"))
    # Decode element by element so every row knows its line number.
    decoder = json.JSONDecoder()
    idx = text.index("[") + 1
    line, last = 1, 0
    n = len(text)
    while True:
        while idx < n and text[idx] in " \t\r\n,":
            idx += 1
        if idx >= n:
            raise DataError(Msg("data_json_not_closed", path=str(path)), Msg("data_json_not_closed_fix"))
        if text[idx] == "]":
            return
        line += text.count("\n", last, idx)
        last = idx
        try:
            obj, idx = decoder.raw_decode(text, idx)
        except json.JSONDecodeError as e:
            raise _json_error(path, e) from None
        where = f"{path}:{line}"
        if not isinstance(obj, dict):
            raise DataError(Msg("data_row_not_object", where=where, kind=type(obj).__name__),
                            Msg("data_row_not_object_fix"))
        yield where, obj


def _read_jsonl(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8") as fh:
        for i, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as e:
                raise DataError(Msg("catalog_invalid_json", path=str(path), line=i, column=e.colno, error=e.msg),
                                Msg("data_jsonl_line_fix")) from None
            if not isinstance(obj, dict):
                raise DataError(Msg("data_jsonl_not_object", where=f"{path}:{i}", kind=type(obj).__name__),
                                Msg("data_jsonl_not_object_fix"))
            yield f"{path}:{i}", obj


def _read_csv(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            yield f"{path}:{reader.line_num}", dict(row)


def _read_parquet(path: Path) -> Iterator[Row]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(Msg("data_needs_pyarrow", path=str(path)), Msg("data_needs_pyarrow_fix")) from None
    table = pq.read_table(path)
    for i, row in enumerate(table.to_pylist(), start=1):
        yield Msg("data_parquet_row", path=str(path), n=i), row


READERS = {".json": _read_json, ".jsonl": _read_jsonl, ".csv": _read_csv, ".parquet": _read_parquet}


def read_rows(path: Path) -> Iterator[Row]:
    """Rows of a file, or of every supported file in a folder (sorted by name)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in READERS)
        if not files:
            raise DataError(Msg("data_folder_empty", path=str(path), exts="/".join(EXTENSIONS)),
                            Msg("data_folder_empty_fix"))
        for f in files:
            yield from read_rows(f)
        return
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(Msg("data_bad_type", path=str(path), suffix=path.suffix),
                        Msg("data_bad_type_fix", exts=", ".join(EXTENSIONS)))
    yield from reader(path)
