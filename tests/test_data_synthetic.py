"""The embedded synthetic datasets: written in native formats, read back by the real readers,
decoded back to exactly one frame per label, deterministic, and different in look per dataset."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pipeline.data import load_dataset
from pipeline.data.frame_store import FrameStore
from pipeline.data.frames import decode_video, store_dataset
from pipeline.data.synthetic import Sizes, generate

TINY = Sizes(participants=4, videos_per_participant=1, frame_size=32, pace=0.5)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    return root, generate(root, seed=3, sizes=TINY)


def test_native_formats_are_written(synthetic):
    root, specs = synthetic
    assert set(specs) == {"synbreakfast", "synsalads", "syncooking"}
    assert min(p.name for p in (root / "synbreakfast/segmentation").glob("*/labels/*.txt")).startswith("P01_cam01_P01_")
    annotation = next((root / "synsalads/ann/sequences").glob("*-activityAnnotation.txt")).read_bytes()
    assert b"\r\n" in annotation and b"cut_and_mix_ingredients" in annotation  # high-level lines, as in 50 Salads
    assert (root / "synsalads/timestamps/timestamps-01-1.txt").is_file()
    assert (root / "syncooking/annotations.csv").read_text().startswith("s01,s01-d01-cam-002,1,")
    assert json.loads((root / "manifest.json").read_text())["datasets"] == specs


def test_datasets_share_a_grammar_but_not_a_vocabulary(synthetic):
    _, specs = synthetic
    datasets = {name: load_dataset(spec) for name, spec in specs.items()}
    classes = {name: set(d.class_names) for name, d in datasets.items()}
    assert "take_tomato" in classes["synbreakfast"] and "add_tomato" in classes["synbreakfast"]
    assert "cut_tomato_prep" in classes["synsalads"] and "put in bowl" in classes["syncooking"]
    assert not classes["synbreakfast"] & classes["synsalads"] and not classes["synsalads"] & classes["syncooking"]
    for dataset in datasets.values():
        assert len(dataset.participants()) == 4 and len(dataset.splits) == 4
        for split in dataset.splits:
            assert len(split.test) == 1 and len(split.train) == 3
        assert dataset.background_id == 0
        for video in dataset.videos.values():  # every video has background and several actions
            assert video.labels[0] == 0 and len(np.unique(video.labels)) >= 4


def test_decoded_frames_match_the_labels_one_for_one(synthetic, tmp_path):
    _, specs = synthetic
    for name, spec in specs.items():
        dataset = load_dataset(spec)
        reports = store_dataset(dataset, tmp_path / name, "npy", progress=None, report_path=tmp_path / f"{name}.csv")
        assert {r.action for r in reports} == {"exact"}
        for video in dataset.videos.values():
            with FrameStore(tmp_path / name / f"{video.name}.npy") as store:
                assert len(store) == video.num_frames
        assert (tmp_path / f"{name}.csv").read_text().count("\n") == len(dataset.videos) + 1
    # 50 Salads is recorded at 30 fps; resampled to 15, frames and labels stay one for one.
    salads = load_dataset(specs["synsalads"])
    reports = store_dataset(salads, tmp_path / "salads15", "npy", fps=15, progress=None)
    assert {r.action for r in reports} == {"exact"}
    assert [r.labels for r in reports] == [v.num_frames for v in salads.resampled(15).videos.values()]


def test_visual_style_differs_between_datasets(synthetic):
    _, specs = synthetic
    means = {}
    for name, spec in specs.items():
        video = next(iter(load_dataset(spec).videos.values()))
        means[name] = decode_video(video.video_path).reshape(-1, 3).mean(0)
    names = list(means)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(means[a] - means[b]).max() > 15  # mean colour apart by > 15 grey levels


def test_generation_is_deterministic(synthetic, tmp_path):
    root, _specs = synthetic
    generate(tmp_path, seed=3, sizes=TINY, names=("synbreakfast",))
    for path in (root / "synbreakfast/segmentation").rglob("*.txt"):
        assert (tmp_path / path.relative_to(root)).read_text() == path.read_text()
    # the same bytes, not only the same pictures: generated again after other work in this process
    # (the module's other tests), which is what made PyAV's libx264 write other bytes
    for video in (root / "synbreakfast/videos").rglob("*.mp4"):
        assert (tmp_path / video.relative_to(root)).read_bytes() == video.read_bytes(), video.name


def test_take_and_put_back_frames_are_ambiguous_alone():
    """A frame of "take" at progress p shows exactly what "put back" shows at 1 - p: only the order
    of frames tells the two actions apart."""
    from pipeline.data.synthetic import DATASETS
    from pipeline.data.synthetic.grammar import Step
    from pipeline.data.synthetic.render import Painter, Scene

    style = DATASETS["synbreakfast"].style
    painter = Painter(48, type(style)(**{**style.__dict__, "noise": 0.0}), (0.9, 0.7, 0.6), (0.0, 0.0))
    scene = Scene()
    take, put_back = Step("take", "milk", 0, 9), Step("return", "milk", 0, 9)
    for progress in (0.1, 0.35, 0.6, 0.9):
        seen_taking = painter.frame(scene, take, progress, np.random.default_rng(0))
        seen_returning = painter.frame(scene, put_back, 1 - progress, np.random.default_rng(0))
        assert np.array_equal(seen_taking, seen_returning)
    assert not np.array_equal(painter.frame(scene, take, 0.1, np.random.default_rng(0)),
                              painter.frame(scene, take, 0.9, np.random.default_rng(0)))


def test_command_line_writes_and_decodes(tmp_path):
    from pipeline.__main__ import main

    assert main(["synthetic", "--output", str(tmp_path / "data"), "--datasets", "syncooking", "--participants", "4",
                 "--videos-per-participant", "1", "--frame-size", "16", "--pace", "0.4"]) == 0
    assert main(["frames", "--dataset", str(tmp_path / "data/manifest.json"), "--name", "syncooking",
                 "--output-dir", str(tmp_path / "frames"), "--size", "8x8", "--store", "h5"]) == 0
    assert len(list((tmp_path / "frames").glob("*.h5"))) == 4
    report = (tmp_path / "frames/report.csv").read_text().splitlines()
    assert report[0] == "video,path,decoded,labels,action" and all(line.endswith(",exact") for line in report[1:])


@pytest.mark.skipif(shutil.which("taskset") is None or len(os.sched_getaffinity(0)) < 2,
                    reason="needs taskset and at least 2 CPUs")
def test_videos_are_the_same_bytes_whatever_cpus_the_encoder_sees(tmp_path):
    command = [sys.executable, "-m", "pipeline", "synthetic", "--seed", "1", "--participants", "4",
               "--videos-per-participant", "1", "--frame-size", "32", "--pace", "0.4", "--datasets", "syncooking"]
    for name, prefix in (("one", ["taskset", "-c", "0"]), ("all", [])):
        subprocess.run([*prefix, *command, "--output", str(tmp_path / name)], check=True, capture_output=True)
    videos = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.mp4"))
    assert videos and all((tmp_path / "one" / v).read_bytes() == (tmp_path / "all" / v).read_bytes() for v in videos)


def test_stores_of_other_parameters_are_rewritten(synthetic, tmp_path):
    _, specs = synthetic
    dataset = load_dataset(specs["syncooking"])
    video = next(iter(dataset.videos.values()))
    store_dataset(dataset, tmp_path, "npy", size=(8, 8), progress=None)
    with FrameStore(tmp_path / f"{video.name}.npy") as store:
        assert store.read([0]).shape[1:3] == (8, 8)
    reports = store_dataset(dataset, tmp_path, "npy", size=(12, 12), progress=None)
    assert "already stored" not in {r.action for r in reports}
    with FrameStore(tmp_path / f"{video.name}.npy") as store:
        assert store.read([0]).shape[1:3] == (12, 12)
    again = store_dataset(dataset, tmp_path, "npy", size=(12, 12), progress=None)  # a resumed run keeps them
    assert {r.action for r in again} == {"already stored"}
