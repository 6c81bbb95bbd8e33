"""File helpers shared by the dataset readers: label lists and class-id lookups with exact errors."""

from __future__ import annotations

from pathlib import Path

from ..dataset import AnnotationError


def read_mapping(path: str | Path) -> list[str]:
    """Class names from an MS-TCN `mapping.txt` ("index name" per line, indices 0, 1, 2, ...)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mapping file {path} does not exist")
    names = []
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise AnnotationError(path, f"expected 'index name', found {line!r}", line_number)
        if int(parts[0]) != len(names):
            raise AnnotationError(path, f"index {parts[0]} out of order, expected {len(names)}", line_number)
        names.append(parts[1])
    if not names:
        raise AnnotationError(path, "no classes")
    return names


def read_name_list(path: str | Path) -> list[str]:
    """One name per line, blank lines skipped (the 50 Salads action lists)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label list {path} does not exist")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def class_id(ids: dict[str, int], label: str, path, line_number, mapping_path=None) -> int:
    try:
        return ids[label]
    except KeyError:
        source = f" in {mapping_path}" if mapping_path else ""
        raise AnnotationError(path, f"label {label!r} is not a known class{source}", line_number) from None
