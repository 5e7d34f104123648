"""Read rows from json, jsonl, csv, parquet, arrow and txt files (a file, a folder of files of one type, or a glob
pattern — LLaMA-Factory's file_name forms), remembering where each row came from (for error messages)."""

from __future__ import annotations

import csv
import glob
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tuneforge.config.messages import Msg
from tuneforge.errors import DataError

EXTENSIONS = (".json", ".jsonl", ".csv", ".parquet", ".arrow", ".txt")
Row = tuple[str, dict[str, Any]]  # (where: "file:line N", row)


def _json_error(path: Path, e: json.JSONDecodeError, line_offset: int = 0) -> DataError:
    return DataError(Msg("catalog_invalid_json", path=str(path), line=e.lineno + line_offset, column=e.colno,
                         error=e.msg), Msg("data_json_line_fix"))


def read_utf8(path: Path) -> str:
    """The text of ``path``; a file that is not UTF-8 is a DataError naming the byte offset and line."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(Msg("data_not_utf8", path=str(path), offset=e.start, line=raw.count(b"\n", 0, e.start) + 1,
                            error=e.reason), Msg("data_not_utf8_fix")) from None


def _decode(decoder, text: str, idx: int, path: Path):
    try:
        return decoder.raw_decode(text, idx)
    except RecursionError:
        raise DataError(Msg("data_json_too_deep", path=str(path), depth=sys.getrecursionlimit()),
                        Msg("data_json_too_deep_fix")) from None


def _read_json(path: Path) -> Iterator[Row]:
    text = read_utf8(path)
    stripped = text.lstrip()
    if not stripped.startswith("["):
        if stripped.startswith("{") and "\n{" in stripped:  # JSON lines saved with a .json name
            yield from _read_jsonl(path)
            return
        try:
            obj = _decode(json.JSONDecoder(), stripped, 0, path)[0]
        except json.JSONDecodeError as e:
            raise _json_error(path, e, text.count("\n", 0, len(text) - len(stripped))) from None
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
            _check_trailing(path, text, idx + 1)
            return
        line += text.count("\n", last, idx)
        last = idx
        try:
            obj, idx = _decode(decoder, text, idx, path)
        except json.JSONDecodeError as e:
            raise _json_error(path, e) from None
        where = f"{path}:{line}"
        if not isinstance(obj, dict):
            raise DataError(Msg("data_row_not_object", where=where, kind=type(obj).__name__),
                            Msg("data_row_not_object_fix"))
        yield where, obj


def _check_trailing(path: Path, text: str, end: int) -> None:
    """Nothing but whitespace may follow the array: a second array or any text would be rows read by no one."""
    rest = text[end:]
    if rest.strip():
        at = end + len(rest) - len(rest.lstrip())
        kind = "another JSON array" if rest.lstrip().startswith("[") else repr(rest.strip()[:30])
        raise DataError(Msg("data_json_trailing", path=str(path), line=text.count("\n", 0, at) + 1, kind=kind),
                        Msg("data_json_trailing_fix"))


def _read_jsonl(path: Path) -> Iterator[Row]:
    decoder = json.JSONDecoder()
    for i, raw in enumerate(io.StringIO(read_utf8(path)), start=1):  # lines end at \n only, as JSON lines do
        if not raw.strip():
            continue
        try:
            obj, end = _decode(decoder, raw.strip(), 0, path)
            if end != len(raw.strip()):  # two objects on one line, or text after one
                raise json.JSONDecodeError("text after the JSON object (one object per line)", raw.strip(), end)
        except json.JSONDecodeError as e:
            raise DataError(Msg("catalog_invalid_json", path=str(path), line=i, column=e.colno, error=e.msg),
                            Msg("data_jsonl_line_fix")) from None
        if not isinstance(obj, dict):
            raise DataError(Msg("data_jsonl_not_object", where=f"{path}:{i}", kind=type(obj).__name__),
                            Msg("data_jsonl_not_object_fix"))
        yield f"{path}:{i}", obj


def _read_csv(path: Path) -> Iterator[Row]:
    """Rows keyed by the header; a row with more or fewer fields than the header is an error (an unquoted comma
    would otherwise cut a reply and lose the rest)."""
    reader = csv.reader(io.StringIO(read_utf8(path), newline=""))
    try:
        yield from _csv_rows(path, reader)
    except csv.Error as e:  # a NUL byte, a field over the size limit
        raise DataError(Msg("data_csv_unreadable", where=f"{path}:{reader.line_num}", error=str(e)),
                        Msg("data_csv_fields_fix")) from None


def _csv_rows(path: Path, reader) -> Iterator[Row]:
    try:
        header = next(reader)
    except StopIteration:
        return
    for fields in reader:
        if not fields or (len(fields) == 1 and not fields[0].strip()):  # a blank (or all-space) line
            continue
        where = f"{path}:{reader.line_num}"
        if len(fields) != len(header):
            extra = Msg("data_csv_extra", text=",".join(fields[len(header):])) if len(fields) > len(header) else ""
            raise DataError(Msg("data_csv_fields", where=where, got=len(fields), want=len(header),
                                header=",".join(header), extra=extra), Msg("data_csv_fields_fix"))
        yield where, dict(zip(header, fields))


def _read_parquet(path: Path) -> Iterator[Row]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(Msg("data_needs_pyarrow", path=str(path)), Msg("data_needs_pyarrow_fix")) from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 — pyarrow's own errors (ArrowInvalid, OSError) for a file that is not one
        raise DataError(Msg("data_unreadable_file", path=str(path), kind="parquet", error=str(e)[:200]),
                        Msg("data_unreadable_file_fix")) from None
    for i, row in enumerate(table.to_pylist(), start=1):
        yield Msg("data_parquet_row", path=str(path), n=i), row


def _read_txt(path: Path) -> Iterator[Row]:
    """One document per line, as LLaMA-Factory reads .txt (datasets' text builder): a row {"text": line}. Blank
    lines carry no text; they are skipped and counted."""
    blank = 0
    for i, raw in enumerate(io.StringIO(read_utf8(path)), start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            blank += 1
            continue
        yield f"{path}:{i}", {"text": line}
    if blank:
        from tuneforge.utils import log

        log.info(f"{path}: skipped {blank} blank line(s) (a .txt file holds one document per line)")


def _read_arrow(path: Path) -> Iterator[Row]:
    """An Arrow file as written by datasets (save_to_disk / its cache)."""
    from datasets import Dataset

    try:
        ds = Dataset.from_file(str(path))
    except Exception as e:  # noqa: BLE001 — pyarrow's errors for a file that is not an Arrow file
        raise DataError(Msg("data_unreadable_file", path=str(path), kind="arrow", error=str(e)[:200]),
                        Msg("data_unreadable_file_fix")) from None
    for i, row in enumerate(ds, start=1):
        yield Msg("data_parquet_row", path=str(path), n=i), dict(row)


READERS = {".json": _read_json, ".jsonl": _read_jsonl, ".csv": _read_csv, ".parquet": _read_parquet,
           ".arrow": _read_arrow, ".txt": _read_txt}


def _read_many(files: list[Path], what: Path) -> Iterator[Row]:
    """Files of one folder or glob: all of one type, as LLaMA-Factory requires."""
    kinds = sorted({f.suffix.lower() for f in files})
    if len(kinds) > 1:
        raise DataError(Msg("data_mixed_types", path=str(what), kinds=", ".join(kinds)), Msg("data_mixed_types_fix"))
    for f in files:
        yield from read_rows(f)


def read_rows(path: Path) -> Iterator[Row]:
    """Rows of a file, of every file in a folder (one type, sorted by name), or of the files a glob matches."""
    if any(c in str(path) for c in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not files:
            raise DataError(Msg("data_glob_empty", path=str(path)), Msg("data_glob_empty_fix"))
        yield from _read_many(files, path)
        return
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DataError(Msg("data_folder_empty", path=str(path), exts="/".join(EXTENSIONS)),
                            Msg("data_folder_empty_fix"))
        yield from _read_many(files, path)
        return
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(Msg("data_bad_type", path=str(path), suffix=path.suffix),
                        Msg("data_bad_type_fix", exts=", ".join(EXTENSIONS)))
    yield from reader(path)
