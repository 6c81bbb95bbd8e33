"""Readers, splits and label resampling on small hand-written files: formats, conventions, errors."""

import numpy as np
import pytest

from pipeline.data import AnnotationError, leave_person_out, load_dataset, resample_labels
from pipeline.data.dataset import natural_key
from pipeline.data.videos import index_videos


def write(path, text, newline="\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline=newline) as handle:
        handle.write(text)
    return path


def mstcn_root(tmp_path, people=4):
    write(tmp_path / "mapping.txt", "0 SIL\n1 take\n2 pour\n")
    for person in range(1, people + 1):
        write(tmp_path / "groundTruth" / f"P{person:02d}_tea.txt", "SIL\ntake\ntake\npour\nSIL\n")
    return tmp_path


def test_mstcn_reads_labels_and_features(tmp_path):
    root = mstcn_root(tmp_path)
    spec = {"name": "toy", "format": "mstcn", "annotations": str(root), "fps": 15, "background": "SIL"}
    dataset = load_dataset(spec)  # no features/ folder: labels only
    video = dataset.videos["P01_tea"]
    assert video.labels.tolist() == [0, 1, 1, 2, 0] and video.participant == "P01"
    assert video.features_path is None
    assert len(dataset.splits) == 4 and dataset.background_id == 0
    (root / "features").mkdir()
    for person in range(1, 5):
        np.save(root / "features" / f"P{person:02d}_tea.npy", np.zeros((8, 5), np.float32))
    assert load_dataset(spec).videos["P01_tea"].features_path == root / "features" / "P01_tea.npy"
    (root / "features" / "P02_tea.npy").unlink()
    with pytest.raises(ValueError, match=r"1 of 4 videos have no feature array, e\.g\. .*features/P02_tea\.npy"):
        load_dataset(spec)


def test_mstcn_label_not_in_mapping_names_file_and_line(tmp_path):
    root = mstcn_root(tmp_path)
    write(root / "groundTruth" / "P02_tea.txt", "SIL\ntake\nstir\n")
    with pytest.raises(AnnotationError, match=r"P02_tea\.txt:3: label 'stir' is not a known class in .*mapping\.txt"):
        load_dataset({"name": "toy", "format": "mstcn", "annotations": str(root), "fps": 15,
                      "participant_pattern": r"^(P\d+)"})


def test_mapping_out_of_order_is_an_error(tmp_path):
    root = mstcn_root(tmp_path)
    write(root / "mapping.txt", "0 SIL\n2 take\n")
    with pytest.raises(AnnotationError, match=r"mapping\.txt:2: index 2 out of order"):
        load_dataset({"name": "toy", "format": "mstcn", "annotations": str(root), "fps": 15,
                      "participant_pattern": r"^(P\d+)"})


def test_breakfast_segmentation_ranges(tmp_path):
    for person in range(1, 5):
        write(tmp_path / "tea" / "labels" / f"P{person:02d}_cam01_P{person:02d}_tea.txt",
              "1-0 SIL  \n1-2 SIL  \n3-5 take_cup  \n6-6 pour_water  \n")
    dataset = load_dataset({"name": "bf", "format": "breakfast", "annotations": str(tmp_path), "fps": 15})
    assert dataset.class_names == ["SIL", "pour_water", "take_cup"]
    assert dataset.videos["P01_cam01_P01_tea"].labels.tolist() == [0, 0, 2, 2, 2, 1]
    assert dataset.videos["P03_cam01_P03_tea"].participant == "P03"


@pytest.mark.parametrize("text, message", [
    ("1-2 SIL\n4-5 take\n", r"P01_tea\.txt:2: range 4-5 does not continue from frame 2"),
    ("1-2 SIL\nthree-5 take\n", r"P01_tea\.txt:2: expected 'start-end label'"),
])
def test_breakfast_segmentation_errors(tmp_path, text, message):
    write(tmp_path / "tea" / "labels" / "P01_tea.txt", text)
    with pytest.raises(AnnotationError, match=message):
        load_dataset({"name": "bf", "format": "breakfast", "annotations": str(tmp_path), "fps": 15})


def salads_root(tmp_path, annotation, stamps=(100, 200, 300, 400, 500, 600)):
    write(tmp_path / "ann" / "low_level_actions.txt", "cut_core\ncut_prep\nplace_core\n")
    write(tmp_path / "ann" / "high_level_actions.txt", "cut_and_mix")
    for person in range(1, 5):
        write(tmp_path / "ann" / "sequences" / f"{person:02d}-1-activityAnnotation.txt", annotation, newline="\r\n")
        write(tmp_path / "timestamps" / f"timestamps-{person:02d}-1.txt",
              "".join(f"{s} rgb-{person:02d}-1-{i}.png\n" for i, s in enumerate(stamps)))
    return tmp_path


def test_salads_timestamps_to_frames(tmp_path):
    # prep covers frames 1-2 (ts 190..310), core 3-4 but overlaps prep's end: the later start wins.
    root = salads_root(tmp_path, "90 620 cut_and_mix\n190 310 cut_prep\n300 510 cut_core\n")
    dataset = load_dataset({"name": "s", "format": "salads", "annotations": str(root), "fps": 30})
    assert dataset.class_names == ["background", "cut_core", "cut_prep", "place_core"]
    assert dataset.videos["rgb-01-1"].labels.tolist() == [0, 2, 1, 1, 1, 0]
    assert dataset.videos["rgb-02-1"].participant == "02"


def test_salads_errors(tmp_path):
    root = salads_root(tmp_path, "190 310 cut_prep\n300 510 stir_core\n")
    with pytest.raises(AnnotationError, match=r"01-1-activityAnnotation\.txt:2: label 'stir_core'"):
        load_dataset({"name": "s", "format": "salads", "annotations": str(root), "fps": 30})
    root = salads_root(tmp_path / "b", "190 310 cut_prep\n", stamps=(100, 300, 200))
    with pytest.raises(AnnotationError, match=r"timestamps-01-1\.txt:3: timestamps must increase"):
        load_dataset({"name": "s", "format": "salads", "annotations": str(root), "fps": 30})
    (root / "timestamps" / "timestamps-01-1.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"timestamps-01-1\.txt does not exist"):
        load_dataset({"name": "s", "format": "salads", "annotations": str(root), "fps": 30})


def test_mpii_csv(tmp_path):
    rows = ["Subject,File,Start,End,Category,Name"]
    for subject in (8, 10, 11, 12):
        rows += [f"s{subject},s{subject}-d01-cam-002,2,3,5,cut slices", f"s{subject},s{subject}-d01-cam-002,4,6,3,pour"]
    csv_path = write(tmp_path / "annotations.csv", "\n".join(rows) + "\n")
    dataset = load_dataset({"name": "mpii", "format": "mpii", "annotations": str(csv_path), "fps": 29.4})
    assert dataset.class_names == ["background activity", "pour", "cut slices"]
    assert dataset.videos["s8-d01-cam-002"].labels.tolist() == [0, 2, 2, 1, 1, 1]
    assert dataset.videos["s10-d01-cam-002"].participant == "s10"
    write(csv_path, "s8,v,2,3,5,cut slices\ns8,v,4,6,5,peel\n")
    with pytest.raises(AnnotationError, match=r"annotations\.csv:2: category id 5 named both"):
        load_dataset({"name": "mpii", "format": "mpii", "annotations": str(csv_path), "fps": 29.4})


def test_spec_errors_name_the_key(tmp_path):
    root = mstcn_root(tmp_path)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['particpant_pattern'\]"):
        load_dataset({"name": "toy", "format": "mstcn", "annotations": str(root), "fps": 15,
                      "particpant_pattern": "P"})
    with pytest.raises(ValueError, match=r"format must be one of"):
        load_dataset({"name": "toy", "format": "csv", "annotations": str(root), "fps": 15})
    with pytest.raises(ValueError, match=r"the key 'fps' is required"):
        load_dataset({"name": "toy", "format": "mstcn", "annotations": str(root)})


def test_leave_person_out_splits():
    participant_of = {f"P{p}_{k}": f"P{p}" for p in range(1, 11) for k in range(3)}
    splits = leave_person_out(participant_of, 4)
    tested = [sorted({participant_of[n] for n in s.test}, key=natural_key) for s in splits]
    assert tested == [["P1", "P2", "P3"], ["P4", "P5", "P6"], ["P7", "P8"], ["P9", "P10"]]
    for split in splits:
        assert not {participant_of[n] for n in split.train} & {participant_of[n] for n in split.test}
        assert len(split.train) + len(split.test) == 30
    with pytest.raises(ValueError, match="at least 4 participants"):
        leave_person_out({"a": "P1", "b": "P2"}, 4)


def test_resample_labels_follows_the_display_rule():
    labels = np.arange(7)
    assert resample_labels(labels, 30, 15).tolist() == [0, 2, 4, 6]  # 7 frames last 7/30 s: 4 outputs
    assert resample_labels(labels, 10, 25).tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4, 5, 5, 6, 6, 6]
    assert resample_labels(labels, 15, 15) is labels


def test_video_index_knows_breakfast_folder_names(tmp_path):
    write(tmp_path / "P03" / "cam01" / "P03_cereals.avi", "")
    write(tmp_path / "rgb-01-1.mp4", "")
    index = index_videos(tmp_path)
    assert index["P03_cam01_P03_cereals"] == tmp_path / "P03" / "cam01" / "P03_cereals.avi"
    assert index["rgb-01-1"] == tmp_path / "rgb-01-1.mp4"


# Every reader against the same classes of bad input: an empty file, an unknown label, a malformed
# line, a duplicate video, a missing folder; each an error naming the file (and line where there is one).
@pytest.mark.parametrize("damage, error, message", [
    (lambda r: write(r / "groundTruth" / "P02_tea.txt", ""), AnnotationError, r"P02_tea\.txt: no frames"),
    (lambda r: write(r / "groundTruth" / "P02_tea.txt", "SIL\nboil\n"), AnnotationError, r"P02_tea\.txt:2: label 'boil'"),
    (lambda r: write(r / "mapping.txt", "0 SIL\n1take\n"), AnnotationError, r"mapping\.txt:2: expected 'index name'"),
    (lambda r: write(r / "mapping.txt", ""), AnnotationError, r"mapping\.txt: no classes"),
    (lambda r: (r / "mapping.txt").unlink(), FileNotFoundError, r"mapping file .*mapping\.txt does not exist"),
    (lambda r: [p.unlink() for p in (r / "groundTruth").iterdir()], FileNotFoundError, r"no ground-truth files .*groundTruth"),
    (lambda r: write(r / "mapping.txt", "0 SIL\n1 take\n2 take\n"), AnnotationError,
     r"mapping\.txt:3: class name 'take' repeats \(first at line 2\)"),
    (lambda r: (r / "mapping.txt").write_bytes("0 SIL\n1 take\n2 café\n".encode("latin-1")), AnnotationError,
     r"mapping\.txt:3: is not utf-8 text \(byte 0xe9 does not decode\); save the file as UTF-8"),
    (lambda r: (r / "groundTruth" / "P02_tea.txt").write_bytes("SIL\ntake\n".encode("utf-16-le")), AnnotationError,
     r"P02_tea\.txt:1: holds NUL bytes: UTF-16 text without a byte-order mark"),
])
def test_mstcn_bad_inputs(tmp_path, damage, error, message):
    root = mstcn_root(tmp_path)
    damage(root)
    with pytest.raises(error, match=message):
        load_dataset({"name": "toy", "format": "mstcn", "annotations": str(root), "fps": 15})


def test_text_files_in_utf16_or_with_a_utf8_mark_are_read(tmp_path):
    # what Windows editors write: a byte-order mark first, or UTF-16 with its mark
    root = mstcn_root(tmp_path)
    (root / "mapping.txt").write_bytes(b"\xef\xbb\xbf" + b"0 SIL\n1 take\n2 pour\n")
    (root / "groundTruth" / "P02_tea.txt").write_bytes("\ufeffSIL\ntake\n".encode("utf-8"))
    (root / "groundTruth" / "P03_tea.txt").write_bytes("SIL\r\npour\r\n".encode("utf-16"))
    dataset = load_dataset({"name": "toy", "format": "mstcn", "annotations": str(root), "fps": 15})
    assert dataset.class_names == ["SIL", "take", "pour"]
    assert dataset.videos["P02_tea"].labels.tolist() == [0, 1]
    assert dataset.videos["P03_tea"].labels.tolist() == [0, 2]


def test_a_repeated_class_or_shared_video_is_named_by_the_dataset_check():
    from pipeline.data.dataset import Dataset, Split, Video

    videos = {name: Video(name, name, np.zeros(3, np.int64)) for name in ("a", "b")}
    with pytest.raises(ValueError, match=r"class names repeat: \['x'\]"):
        Dataset("toy", ["x", "y", "x"], videos, 15).validate()
    with pytest.raises(ValueError, match=r"split 1: videos on both the train and test side: \['b'\]"):
        Dataset("toy", ["x"], videos, 15, [Split(["a", "b"], ["b"])]).validate()


@pytest.mark.parametrize("bundle, message", [
    ("P01_tea.txt\nP09_tea.txt\n", r"train\.split1\.bundle:2: video 'P09_tea' has no ground-truth file"),
    ("P01_tea.txt\nP01_tea.txt\n", r"train\.split1\.bundle:2: video 'P01_tea' is listed twice"),
    ("\n", r"train\.split1\.bundle: lists no video"),
    ("P01_tea.txt\nP04_tea.txt\n", r"test\.split1\.bundle: video 'P04_tea' is also in .*train\.split1\.bundle"),
])
def test_mstcn_bad_bundles_name_the_bundle_file(tmp_path, bundle, message):
    root = mstcn_root(tmp_path)
    write(root / "splits" / "train.split1.bundle", bundle)
    write(root / "splits" / "test.split1.bundle", "P04_tea.txt\n")
    with pytest.raises(AnnotationError, match=message):
        load_dataset({"name": "toy", "format": "mstcn", "annotations": str(root), "fps": 15, "splits": "bundles"})


@pytest.mark.parametrize("damage, error, message", [
    (lambda r: write(r / "tea" / "labels" / "P02_cam01_P02_tea.txt", ""), AnnotationError, r"P02_cam01_P02_tea\.txt: no ranges"),
    (lambda r: write(r / "tea" / "labels" / "P02_cam01_P02_tea.txt", "1-2 SIL\n3-4 boil\n"), AnnotationError,
     r"P02_cam01_P02_tea\.txt:2: label 'boil' is not a known class in .*mapping\.txt"),
    (lambda r: write(r / "coffee" / "labels" / "P02_cam01_P02_tea.txt", "1-2 SIL\n"), AnnotationError,
     r"P02_cam01_P02_tea\.txt: video 'P02_cam01_P02_tea' is annotated twice, also in .*/labels/P02_cam01_P02_tea\.txt"),
    (lambda r: [p.unlink() for p in (r / "tea" / "labels").iterdir()], FileNotFoundError, r"no segmentation files"),
])
def test_breakfast_bad_inputs(tmp_path, damage, error, message):
    root = tmp_path / "seg"
    for person in range(1, 5):
        write(root / "tea" / "labels" / f"P{person:02d}_cam01_P{person:02d}_tea.txt", "1-2 SIL\n3-5 take\n")
    write(tmp_path / "mapping.txt", "0 SIL\n1 take\n")
    damage(root)
    with pytest.raises(error, match=message):
        load_dataset({"name": "bf", "format": "breakfast", "annotations": str(root), "fps": 15,
                      "mapping": str(tmp_path / "mapping.txt")})


def test_salads_bad_inputs(tmp_path, caplog):
    spec = {"name": "s", "format": "salads", "fps": 30}
    root = salads_root(tmp_path / "empty", "190 310 cut_prep\n")
    write(root / "ann" / "sequences" / "02-1-activityAnnotation.txt", "")
    with pytest.raises(AnnotationError, match=r"02-1-activityAnnotation\.txt: no lowest-level segment"):
        load_dataset({**spec, "annotations": str(root)})
    root = salads_root(tmp_path / "malformed", "190 310 cut_prep\n190 cut_core\n")
    with pytest.raises(AnnotationError, match=r"01-1-activityAnnotation\.txt:2: expected 'start_timestamp"):
        load_dataset({**spec, "annotations": str(root)})
    root = salads_root(tmp_path / "outside", "190 310 cut_prep\n700 900 cut_core\n")  # stamps end at 600
    dataset = load_dataset({**spec, "annotations": str(root)})
    assert 1 not in dataset.videos["rgb-01-1"].labels  # cut_core covers no frame
    assert any("01-1-activityAnnotation.txt:2: segment cut_core (700-900) covers no frame" in record.getMessage()
               for record in caplog.records)
    with pytest.raises(FileNotFoundError, match=r"label list .*low_level_actions\.txt does not exist"):
        load_dataset({**spec, "annotations": str(tmp_path / "nowhere")})


@pytest.mark.parametrize("text, message", [
    ("", r"annotations\.csv: no annotation rows"),
    ("s8,v,2,3,5\n", r"annotations\.csv:1: expected 'subject,file_name"),
    ("s8,v,4,2,5,cut\n", r"annotations\.csv:1: frame range 4-2 is empty"),
    ("s8,v,2,3,5,cut\ns9,v,4,5,5,cut\n", r"annotations\.csv:2: video 'v' is given two subjects"),
])
def test_mpii_bad_inputs(tmp_path, text, message):
    csv_path = write(tmp_path / "annotations.csv", text)
    with pytest.raises(AnnotationError, match=message):
        load_dataset({"name": "mpii", "format": "mpii", "annotations": str(csv_path), "fps": 29.4})
    with pytest.raises(FileNotFoundError, match=r"annotation file .*missing\.csv does not exist"):
        load_dataset({"name": "mpii", "format": "mpii", "annotations": str(tmp_path / "missing.csv"), "fps": 29.4})
