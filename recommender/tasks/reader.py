"""Read a user's task file (CSV, TSV, JSONL, CoNLL) into rows, with errors that name the line.

Parsing is strict on purpose: a bad byte, a ragged row or a broken quote is reported with its
line number instead of silently shifting columns.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from recommender.errors import DataError, DataFileNotFoundError

DEFAULT_MAX_FILE_BYTES = 200 * 1024 * 1024
SUFFIXES = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".json": "json", ".conll": "conll", ".txt": "txt",
}
csv.field_size_limit(10 * 1024 * 1024)


def detect_format(path: Path) -> str:
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{path.name}: unsupported file type {path.suffix!r}; use one of "
            f"{', '.join(sorted(SUFFIXES))}"
        )
    return fmt


def read_text(path: Path, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> str:
    """Return the file's text; reject missing, oversized, empty and non-UTF-8 files."""
    if not path.exists():
        raise DataFileNotFoundError(f"data file not found: {path}")
    if not path.is_file():
        raise DataError(f"{path} is not a regular file (a folder, device, FIFO or socket?)")
    size = path.stat().st_size
    if size > max_bytes:
        raise DataError(
            f"{path.name} is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit; "
            "subsample it or raise max_file_bytes"
        )
    return decode_bytes(path.read_bytes(), path.name)


def decode_bytes(raw: bytes, name: str) -> str:
    """Decode UTF-8 (a BOM is allowed); name the line of the first invalid byte."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{name}: line {line} is not valid UTF-8 (byte 0x{raw[exc.start]:02x}); "
            "re-save the file as UTF-8"
        ) from None
    if not text.strip():
        raise DataError(f"{name} is empty")
    return text


def parse_rows(text: str, fmt: str, name: str) -> list[dict[str, Any]]:
    """Parse file text in ``fmt`` into a list of row dicts."""
    if fmt == "txt":
        fmt = "conll" if _looks_like_conll(text) else "tsv"
    if fmt in ("csv", "tsv"):
        return _parse_delimited(text, "," if fmt == "csv" else "\t", name)
    if fmt == "jsonl":
        return _parse_jsonl(text, name)
    if fmt == "json":
        return _parse_json(text, name)
    if fmt == "conll":
        return _parse_conll(text, name)
    raise DataError(f"{name}: unsupported format {fmt!r}")


def read_rows(path: Path, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> list[dict[str, Any]]:
    """Read ``path`` (format from its suffix) into row dicts."""
    return parse_rows(read_text(path, max_bytes), detect_format(path), path.name)


def _parse_delimited(text: str, delimiter: str, name: str) -> list[dict[str, Any]]:
    if delimiter == ",":
        return _parse_delimited_with(text, delimiter, csv.QUOTE_MINIMAL, name)
    # TSV: GLUE-style files hold unbalanced quotes inside unquoted fields (read them without quote
    # handling), while pandas / csv.writer files quote fields that contain quotes. Standard
    # quoting wins when it parses the same rows; otherwise the file is read verbatim.
    verbatim: list[dict[str, Any]] | None = None
    error: DataError | None = None
    try:
        verbatim = _parse_delimited_with(text, delimiter, csv.QUOTE_NONE, name)
    except DataError as exc:
        error = exc
    try:
        quoted = _parse_delimited_with(text, delimiter, csv.QUOTE_MINIMAL, name)
    except DataError:
        quoted = None
    if quoted is not None and (verbatim is None or len(quoted) == len(verbatim)):
        return quoted
    if verbatim is not None:
        return verbatim
    assert error is not None
    raise error


def _parse_delimited_with(text: str, delimiter: str, quoting: Any, name: str) -> list[dict[str, Any]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting,
                        strict=True)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise DataError(f"{name}: cannot read a header row ({exc})") from None
    header = [h.strip() for h in header]
    if len(header) < 2:
        kind = "tab" if delimiter == "\t" else "comma"
        raise DataError(
            f"{name}: the header has one column ({header[0]!r}); expected {kind}-separated "
            "columns (text and label at least)"
        )
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates or "" in header:
        raise DataError(f"{name}: header has empty or duplicate column names {duplicates}")
    rows: list[dict[str, Any]] = []
    try:
        for values in reader:
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise DataError(
                    f"{name}: line {reader.line_num} has {len(values)} fields, the header has "
                    f"{len(header)}; check for stray delimiters or broken quoting"
                )
            rows.append(dict(zip(header, values, strict=True)))
    except csv.Error as exc:
        raise DataError(f"{name}: line {reader.line_num}: {exc} (broken quoting?)") from None
    if not rows:
        raise DataError(f"{name} has a header but no data rows")
    return rows


def _parse_jsonl(text: str, name: str) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{name}: line {number} is not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{name}: line {number} is a JSON {type(row).__name__}, not an object")
        rows.append(row)
    if not rows:
        raise DataError(f"{name} has no JSON rows")
    return rows


def _parse_json(text: str, name: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{name}: invalid JSON at line {exc.lineno} ({exc.msg})") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
        if data and isinstance(data[0], dict) and "paragraphs" in data[0]:
            return _flatten_squad(data)
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(f"{name}: expected a JSON list of objects (or SQuAD format)")
    return data


def _flatten_squad(articles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for article in articles:
        for paragraph in article.get("paragraphs", []):
            for qa in paragraph.get("qas", []):
                rows.append({
                    "id": str(qa["id"]), "title": article.get("title", ""),
                    "question": qa["question"], "context": paragraph["context"],
                    "answers": {
                        "text": [a["text"] for a in qa.get("answers", [])],
                        "answer_start": [int(a["answer_start"]) for a in qa.get("answers", [])],
                    },
                })
    return rows


def _looks_like_conll(text: str) -> bool:
    lines = [ln for ln in text.splitlines()[:50] if ln.strip()]
    return bool(lines) and all(len(ln.split()) in (2, 4) for ln in lines) and "\n\n" in text


def _parse_conll(text: str, name: str) -> list[dict[str, Any]]:
    """Token-per-line NER files: the first column is the token, the last the IOB tag."""
    rows: list[dict[str, Any]] = []
    tokens: list[str] = []
    tags: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts or line.startswith("-DOCSTART-"):
            if tokens:
                rows.append({"tokens": tokens, "tags": tags})
                tokens, tags = [], []
            continue
        if len(parts) < 2:
            raise DataError(f"{name}: line {number} has a token without a tag: {line!r}")
        tokens.append(parts[0])
        tags.append(parts[-1])
    if tokens:
        rows.append({"tokens": tokens, "tags": tags})
    if not rows:
        raise DataError(f"{name} has no sentences")
    return rows
