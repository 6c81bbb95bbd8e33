"""File helpers shared by the dataset readers: annotation text decoded one way, label lists and class-id
lookups with exact errors."""

from __future__ import annotations

import codecs
from pathlib import Path

from ..dataset import AnnotationError


def read_text(path: str | Path) -> str:
    """A text file of a dataset: UTF-8 (a leading byte-order mark is dropped; Windows editors write one),
    or UTF-16 with its byte-order mark; any other encoding is an AnnotationError naming the file and the
    line of the first byte that does not decode, so that no label is read wrong without a word."""
    path = Path(path)
    data = path.read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
        if b"\x00" in data:  # valid UTF-8, but no annotation has NUL characters: UTF-16 without its mark
            line = data[: data.index(b"\x00")].count(b"\n") + 1
            raise AnnotationError(path, "holds NUL bytes: UTF-16 text without a byte-order mark? save the file as "
                                        "UTF-8", line)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise AnnotationError(path, f"is not {encoding.replace('-sig', '')} text (byte 0x{data[error.start]:02x} "
                                    "does not decode); save the file as UTF-8", line) from None


def read_mapping(path: str | Path) -> list[str]:
    """Class names from an MS-TCN `mapping.txt` ("index name" per line, indices 0, 1, 2, ...)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mapping file {path} does not exist")
    names = []
    first_line: dict[str, int] = {}
    for line_number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise AnnotationError(path, f"expected 'index name', found {line!r}", line_number)
        if int(parts[0]) != len(names):
            raise AnnotationError(path, f"index {parts[0]} out of order, expected {len(names)}", line_number)
        if parts[1] in first_line:
            raise AnnotationError(path, f"class name {parts[1]!r} repeats (first at line {first_line[parts[1]]})",
                                  line_number)
        first_line[parts[1]] = line_number
        names.append(parts[1])
    if not names:
        raise AnnotationError(path, "no classes")
    return names


def read_name_list(path: str | Path) -> list[str]:
    """One name per line, blank lines skipped (the 50 Salads action lists)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label list {path} does not exist")
    return [line.strip() for line in read_text(path).splitlines() if line.strip()]


def class_id(ids: dict[str, int], label: str, path, line_number, mapping_path=None) -> int:
    try:
        return ids[label]
    except KeyError:
        source = f" in {mapping_path}" if mapping_path else ""
        raise AnnotationError(path, f"label {label!r} is not a known class{source}", line_number) from None
