"""Files written whole or not at all: a temporary file beside the target, then a rename."""

from __future__ import annotations

import csv
import os
from pathlib import Path


def write_csv(rows: list[dict], path: str | Path, fieldnames: list[str] | None = None) -> None:
    """All `rows` to `path` at once; the columns are the first row's keys unless given."""
    path = Path(path)
    if not rows and fieldnames is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.part")
    with open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


def write_text(path: str | Path, text: str, newline: str = "\n") -> None:
    """`text` to `path` at once (`newline` as written: "\\r\\n" for CRLF files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.part")
    with open(temporary, "w", newline=newline) as handle:
        handle.write(text)
    os.replace(temporary, path)


def save_torch(obj, path: str | Path) -> None:
    """`torch.save(obj, path)` at once: a killed run leaves the previous checkpoint, never half of one."""
    import torch  # not at module level: the CSV and text writers serve steps that never load torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.part")
    torch.save(obj, temporary)
    os.replace(temporary, path)
