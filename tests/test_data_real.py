"""The readers on the real annotation files of Breakfast and 50 Salads (../shared/data/real).

Set DDLSTM_REAL_DATA to read them from elsewhere; without them these tests skip.
"""

import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.data import load_dataset
from pipeline.data.readers.common import read_name_list
from pipeline.data.readers.salads import parse_activity_annotation

REAL = Path(os.environ.get("DDLSTM_REAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "real"))
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"real annotations not found at {REAL} "
                                                          "(set DDLSTM_REAL_DATA to their folder)")
BREAKFAST_GT = {"name": "breakfast", "format": "mstcn", "annotations": str(REAL / "breakfast"), "fps": 15,
                "participant_pattern": r"^(P\d+)", "background": "SIL"}
SALADS_GT = {"name": "50salads", "format": "mstcn", "annotations": str(REAL / "50salads"), "fps": 30,
             "participant_pattern": r"^rgb-(\d+)-"}


@pytest.fixture(scope="module")
def breakfast_gt():
    return load_dataset(BREAKFAST_GT)


def test_breakfast_mstcn_reads_every_file(breakfast_gt):
    assert len(breakfast_gt.videos) == 1712
    assert breakfast_gt.num_classes == 48 and breakfast_gt.background_id == 0
    assert sum(v.num_frames for v in breakfast_gt.videos.values()) == 3_590_899
    assert len(breakfast_gt.participants()) == 52


def test_leave_person_out_reproduces_the_published_breakfast_splits(breakfast_gt):
    published = load_dataset({**BREAKFAST_GT, "splits": "bundles"})
    assert len(published.splits) == 4
    for ours, theirs in zip(breakfast_gt.splits, published.splits):
        assert sorted(ours.train) == sorted(theirs.train) and sorted(ours.test) == sorted(theirs.test)
        train_people = {breakfast_gt.videos[n].participant for n in ours.train}
        test_people = {breakfast_gt.videos[n].participant for n in ours.test}
        assert not train_people & test_people and len(test_people) == 13


def test_breakfast_segmentation_agrees_with_mstcn_ground_truth(breakfast_gt):
    segmentation = load_dataset({"name": "breakfast", "format": "breakfast", "fps": 15,
                                 "annotations": str(REAL / "breakfast/segmentation/Breakfast_coarse"),
                                 "mapping": str(REAL / "breakfast/mapping.txt")})
    assert set(segmentation.videos) == set(breakfast_gt.videos)
    agree = total = 0
    for name, video in breakfast_gt.videos.items():
        other = segmentation.videos[name].labels
        length = min(video.num_frames, len(other))
        agree += int(np.sum(video.labels[:length] == other[:length]))
        total += video.num_frames
    assert agree / total >= 0.99  # 99.85% measured; the GT is truncated to the feature length


def test_salads_mstcn_ground_truth():
    salads = load_dataset(SALADS_GT)
    assert len(salads.videos) == 50 and salads.num_classes == 19
    assert sum(v.num_frames for v in salads.videos.values()) == 577_595
    assert len(salads.participants()) == 25 and len(salads.splits) == 4


def _clock_root(tmp_path, salads):
    """A 50 Salads root with the real activity annotations and a 30 fps clock per video, anchored so
    that the first action starts where MS-TCN's ground truth leaves 'action_start' (the real
    timestamp files are not in ../shared)."""
    (tmp_path / "ann").symlink_to(REAL / "50salads/ann", target_is_directory=True)
    low = set(read_name_list(REAL / "50salads/ann/low_level_actions.txt"))
    (tmp_path / "timestamps").mkdir()
    for path in sorted((REAL / "50salads/ann/sequences").glob("*-activityAnnotation.txt")):
        sequence = path.name.removesuffix("-activityAnnotation.txt")
        segments = parse_activity_annotation(path, low, set(read_name_list(REAL / "50salads/ann/high_level_actions.txt")))
        first_action = min(s[0] for s in segments)
        video = salads.videos.get(f"rgb-{sequence}")
        if video is not None:
            labels = np.asarray(salads.class_names)[video.labels]
            offset, count = int(np.argmax(labels != "action_start")), video.num_frames
        else:  # subjects 08 and 12 are not in the MS-TCN set
            offset, count = 0, int((max(s[1] for s in segments) - first_action) * 30 / 1e6) + 60
        stamps = (first_action - offset * 1e6 / 30 + np.arange(count) * 1e6 / 30).astype(np.int64)
        (tmp_path / "timestamps" / f"timestamps-{sequence}.txt").write_text("\n".join(map(str, stamps)) + "\n")
    return tmp_path


def test_salads_activity_annotations_parse_and_match_mstcn(tmp_path):
    low = read_name_list(REAL / "50salads/ann/low_level_actions.txt")
    high = set(read_name_list(REAL / "50salads/ann/high_level_actions.txt"))
    files = sorted((REAL / "50salads/ann/sequences").glob("*-activityAnnotation.txt"))
    assert len(files) == 54 and len(low) == 51
    assert sum(len(parse_activity_annotation(f, set(low), high)) for f in files) == 2786

    salads = load_dataset(SALADS_GT)
    activity = load_dataset({"name": "50salads", "format": "salads", "fps": 30,
                             "annotations": str(_clock_root(tmp_path, salads))})
    assert activity.num_classes == 52 and activity.class_names[0] == "background"
    assert len(activity.videos) == 54 and len(activity.splits) == 4
    # Lowest-level labels mapped to MS-TCN's mid-level ones agree with its ground truth.
    to_mid = dict(line.split() for line in (REAL / "50salads/ann/conversions/low_to_mid.txt").read_text().splitlines()
                  if line.strip())
    names = np.array(["background"] + [to_mid[label] for label in low])
    agreement = []
    for name, video in salads.videos.items():
        truth = np.asarray(salads.class_names)[video.labels]
        ours = names[activity.videos[name].labels]
        inside = ~np.isin(truth, ["action_start", "action_end"])
        agreement.append(np.mean(ours[inside] == truth[inside]))
    assert np.mean(agreement) >= 0.9  # 94.5% measured; the two sources place boundaries differently
