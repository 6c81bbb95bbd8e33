"""Reader for MPII Cooking 2's published annotation CSV.

One row per annotated activity: `subject, file_name, start_frame, end_frame, category_id,
category_name[, ...]` (a header row is allowed and skipped; extra columns are ignored). Frames are
1-based and inclusive, as in the MPII Cooking releases; `first_frame=0` reads 0-based files.
Frames no activity covers get an added background class (88 classes on MPII Cooking 2, docs/method.md §1);
a video's length is its last annotated frame. Classes: background first, then the categories in
order of their ids. Overlapping activities: the later-starting one wins.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..dataset import AnnotationError, Dataset, Video, labels_from_ranges, natural_key
from ..splits import leave_person_out
from .common import read_text


def _is_int(text: str) -> bool:
    return text.strip().lstrip("-").isdigit()


def read_mpii(
    csv_path: str | Path,
    name: str,
    fps: float,
    background: str = "background activity",
    first_frame: int = 1,
    num_splits: int = 4,
) -> Dataset:
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"annotation file {csv_path} does not exist")
    rows = []  # (video, subject, first, last, category_id, category, line)
    with io.StringIO(read_text(csv_path), newline="") as handle:
        for line_number, row in enumerate(csv.reader(handle), start=1):
            if not row or not "".join(row).strip():
                continue
            if line_number == 1 and not _is_int(row[2] if len(row) > 2 else ""):
                continue  # header
            if len(row) < 6 or not all(_is_int(row[i]) for i in (2, 3, 4)):
                raise AnnotationError(csv_path, "expected 'subject,file_name,start_frame,end_frame,category_id,"
                                                f"category_name', found {','.join(row)!r}", line_number)
            start, end = int(row[2]) - first_frame, int(row[3]) - first_frame
            if start < 0 or end < start:
                raise AnnotationError(csv_path, f"frame range {row[2]}-{row[3]} is empty or before frame "
                                                f"{first_frame}", line_number)
            rows.append((row[1].strip(), row[0].strip(), start, end, int(row[4]), row[5].strip(), line_number))
    if not rows:
        raise AnnotationError(csv_path, "no annotation rows")
    categories: dict[int, str] = {}
    for _video, _subject, _s, _e, category_id, category, line_number in rows:
        if categories.setdefault(category_id, category) != category:
            raise AnnotationError(csv_path, f"category id {category_id} named both {categories[category_id]!r} "
                                            f"and {category!r}", line_number)
    class_names = [background] + [categories[i] for i in sorted(categories) if categories[i] != background]
    ids = {label: index for index, label in enumerate(class_names)}
    by_video: dict[str, list] = {}
    subject_of: dict[str, str] = {}
    for video, subject, start, end, _cid, category, line_number in rows:
        if subject_of.setdefault(video, subject) != subject:
            raise AnnotationError(csv_path, f"video {video!r} is given two subjects", line_number)
        by_video.setdefault(video, []).append((start, end, ids[category], line_number))
    videos = {}
    for video in sorted(by_video, key=natural_key):
        ranges = by_video[video]
        length = max(r[1] for r in ranges) + 1
        videos[video] = Video(name=video, participant=subject_of[video],
                              labels=labels_from_ranges(ranges, length, csv_path, fill=ids[background]))
    dataset = Dataset(name=name, class_names=class_names, videos=videos, fps=fps,
                      splits=leave_person_out(subject_of, num_splits), background=background)
    dataset.validate()
    return dataset
