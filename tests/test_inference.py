"""A trained run on new recordings: the exported bundle (loads with weights_only, refuses damaged,
foreign and other-version files by name), `predict` reproducing the run's own predictions bit for bit,
`stream` equal to `predict` frame for frame with memory bounded by the history, and their errors."""

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.data import load_dataset
from pipeline.data.precomputed import FeatureError, FeatureSource
from pipeline.features.linear import LinearConfig, train_and_extract
from pipeline.inference import (
    BundleError,
    Predictor,
    StreamEngine,
    export_bundle,
    load_bundle,
    write_prediction,
)
from pipeline.inference.stream import frames_of, stream
from pipeline.training.boundary import BoundaryConfig, boundary_predictions, write_with_boundary
from pipeline.training.config import RecurrentConfig
from pipeline.training.recurrent import train_recurrent
from pipeline.training.sequences import load_split
from tests.test_precomputed import CLASSES, mstcn_folder

ROOT = Path(__file__).resolve().parents[1]


def dataset_spec(root, name):
    return {"name": name, "format": "mstcn", "annotations": str(root), "fps": 15, "background": "SIL"}


def chain(folder, name, seed):
    """A features dataset through the workflow's stages: linear logits, cross-fitted boundary inputs."""
    mstcn_folder(folder / name, dim=6, frames=40, seed=seed)
    spec = dataset_spec(folder / name, name)
    dataset = load_dataset(spec)
    source = FeatureSource(dataset, fps=15)
    train_and_extract(dataset, 1, source, LinearConfig(max_frames=500), folder / f"{name}.h5", folder / f"{name}_linear")
    boundary = BoundaryConfig(history=8, hidden=8, batch_size=8, iterations=20, checkpoint_every=20, log_every=10,
                              folds=2, device="cpu")
    split = load_split(folder / f"{name}.h5")
    predictions = boundary_predictions(split, boundary, folder / f"{name}_boundary")
    write_with_boundary(folder / f"{name}.h5", predictions, folder / f"{name}_inputs.h5")
    return spec, source


def run_config(**changes):
    values = {"protocol": "joint", "model": "ddlstm", "layers": 2, "hidden": 8, "history": 10, "batch_size": 8,
              "iterations": 30, "lr": 0.5, "momentum": 0.9, "clip_grad_norm": 5.0, "checkpoint_every": 100,
              "log_every": 10, "eval_batch": 16, "population_batches": 5, "seed": 0, "device": "cpu"}
    return RecurrentConfig(**{**values, **changes})


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inference")
    (spec_a, _), (spec_b, _) = chain(folder, "tea", 0), chain(folder, "coffee", 1)
    splits = [load_split(folder / "tea_inputs.h5"), load_split(folder / "coffee_inputs.h5")]
    train_recurrent(splits, run_config(), folder / "run")
    bundle = export_bundle(folder / "run", [folder / "tea_inputs.h5", folder / "coffee_inputs.h5"],
                           [folder / "tea_linear/model.pt", folder / "coffee_linear/model.pt"],
                           [folder / "tea_boundary", folder / "coffee_boundary"], [spec_a, spec_b], 15,
                           folder / "run.ddlstm", workflow_config=json.dumps({"note": "test"}))
    return folder, bundle


def test_the_bundle_is_plain_tensors_and_json(exported):
    _, path = exported
    content = torch.load(path, weights_only=True)
    assert content["format"] == "ddlstm-bundle" and content["format_version"] == 1
    assert content["run"]["datasets"] == ["tea", "coffee"] and json.loads(content["workflow_config"]) == {"note": "test"}
    part = content["datasets"]["coffee"]
    assert part["index"] == 1 and part["class_names"] == CLASSES and part["frame_classifier"]["kind"] == "linear"
    assert part["boundary"]["history"] == 8 and part["inputs"] == "logits"
    json.dumps({k: v for k, v in content.items() if k not in ("recurrent", "datasets")})  # the rest is JSON


def test_predict_reproduces_the_runs_predictions_from_the_features(exported, tmp_path):
    folder, path = exported
    saved = np.load(folder / "run/predictions.npz")
    bundle = load_bundle(path)
    for dataset in ("tea", "coffee"):
        predictor = Predictor(bundle, dataset)
        test_videos = [key.split("/")[1] for key in saved.files if key.startswith(f"{dataset}/")]
        assert test_videos
        for video in test_videos:
            prediction = predictor.predict(folder / dataset / "features" / f"{video}.npy")
            np.testing.assert_array_equal(prediction.ids, saved[f"{dataset}/{video}"])
    text, table = write_prediction(prediction, tmp_path)
    labels = text.read_text().splitlines()
    assert len(labels) == 40 and set(labels) <= {*CLASSES, *(f"tea:{c}" for c in CLASSES)}
    rows = table.read_text().splitlines()
    assert rows[0] == "start_frame,end_frame,start_s,end_s,label,confidence" and rows[-1].split(",")[1] == "40"


def test_a_run_on_the_features_themselves_exports_and_predicts_them(exported, tmp_path):
    folder, _ = exported
    specs = [dataset_spec(folder / name, name) for name in ("tea", "coffee")]
    sources = [FeatureSource(load_dataset(spec), fps=15) for spec in specs]
    splits = [load_split(folder / f"{name}_inputs.h5") for name in ("tea", "coffee")]
    train_recurrent(splits, run_config(inputs="features", input_projection=4, model="lstm"), tmp_path / "run",
                    feature_sources=sources)
    path = export_bundle(tmp_path / "run", [folder / f"{name}_inputs.h5" for name in ("tea", "coffee")],
                         [folder / f"{name}_linear/model.pt" for name in ("tea", "coffee")],
                         [folder / f"{name}_boundary" for name in ("tea", "coffee")], specs, 15, tmp_path / "f.ddlstm",
                         feature_sources=sources)
    assert load_bundle(path).dataset("tea")["inputs"] == "features"
    saved = np.load(tmp_path / "run/predictions.npz")
    predictor = Predictor(load_bundle(path), "tea")
    for key in [k for k in saved.files if k.startswith("tea/")]:
        video = folder / "tea/features" / f"{key.split('/')[1]}.npy"
        np.testing.assert_array_equal(predictor.predict(video).ids, saved[key])
        labels = []
        stream(predictor, video, labels.append)
        assert [label.name for label in labels] == predictor.predict(video).names


def test_stream_equals_predict_frame_for_frame(exported):
    folder, path = exported
    predictor = Predictor(load_bundle(path), "coffee")
    video = folder / "coffee/features/P01_tea.npy"
    labels = []
    summary = stream(predictor, video, labels.append)
    assert [label.frame for label in labels] == list(range(40))
    assert [label.name for label in labels] == predictor.predict(video).names
    assert summary["frames"] == 40 and summary["frames_per_s"] > 0 and summary["latency_ms_p95"] >= 0


def test_stream_memory_is_bounded_by_the_history(exported):
    folder, path = exported
    predictor = Predictor(load_bundle(path), "tea")
    logits, values = next(frames_of(predictor, folder / "tea/features/P01_tea.npy"))
    peaks = []
    for frames in (200, 2000):
        engine = StreamEngine(predictor)
        tracemalloc.start()
        for _ in range(frames):
            engine.push(logits, values)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert len(engine.recent_inputs) == predictor.config.history and len(engine.recent_logits) == 8
    assert peaks[1] < 1.5 * peaks[0] + 100_000, peaks  # ten times the frames, not ten times the memory


def test_damaged_foreign_and_other_version_bundles_are_named(exported, tmp_path):
    _, path = exported
    truncated = tmp_path / "truncated.ddlstm"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(BundleError, match=r"truncated\.ddlstm: the bundle is damaged"):
        load_bundle(truncated)
    empty = tmp_path / "empty.ddlstm"
    empty.write_bytes(b"")
    with pytest.raises(BundleError, match=r"empty\.ddlstm: the bundle is empty"):
        load_bundle(empty)
    content = torch.load(path, weights_only=True)
    torch.save({**content, "format_version": 99, "project_version": "9.0"}, tmp_path / "future.ddlstm")
    with pytest.raises(BundleError, match=r"future\.ddlstm: a bundle of format 99 \(ddlstm 9\.0\).*export the run again"):
        load_bundle(tmp_path / "future.ddlstm")
    torch.save({"model": {}}, tmp_path / "other.ddlstm")
    with pytest.raises(BundleError, match=r"other\.ddlstm: not a ddlstm bundle"):
        load_bundle(tmp_path / "other.ddlstm")
    with pytest.raises(FileNotFoundError, match="bundle .*missing.ddlstm does not exist"):
        load_bundle(tmp_path / "missing.ddlstm")


def test_wrong_dataset_kind_and_dimension_are_named(exported, tmp_path):
    _, path = exported
    bundle = load_bundle(path)
    with pytest.raises(BundleError, match=r"run\.ddlstm: no dataset 'salads' in this bundle; it holds \['coffee', 'tea'\]"):
        Predictor(bundle, "salads")
    predictor = Predictor(bundle, "tea")
    np.save(tmp_path / "wide.npy", np.zeros((9, 40), np.float32))
    with pytest.raises(FeatureError, match=r"wide\.npy: shape \(9, 40\) has no axis of 6 feature dimensions"):
        predictor.predict(tmp_path / "wide.npy")
    np.save(tmp_path / "frames.npy", np.zeros((5, 8, 8, 3), np.uint8))
    with pytest.raises(BundleError, match=r"frames\.npy: a frame store, but dataset 'tea' .* was trained from its "
                                          r"features: give a features array"):
        predictor.predict(tmp_path / "frames.npy")
    (tmp_path / "clip.mp4").write_bytes(b"not a video")
    with pytest.raises(BundleError, match=r"clip\.mp4: a video, but dataset 'tea'"):
        predictor.predict(tmp_path / "clip.mp4")
    with pytest.raises(BundleError, match="trained online, without look-ahead"):
        Predictor(bundle, "tea", lookahead=True)


def test_the_command_lines_fail_in_one_line_naming_the_file(exported, tmp_path):
    folder, path = exported

    def run(*args):
        return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], capture_output=True, text=True,
                              cwd=ROOT, check=False, timeout=300)

    result = run("predict", "--model", path, "--dataset", "tea", folder / "tea/features/P01_tea.npy",
                 tmp_path / "absent.npy", "--output", tmp_path / "out")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'absent.npy'}")
    assert (tmp_path / "out/P01_tea.txt").is_file() and not (tmp_path / "out/absent.txt").exists()
    result = run("stream", "--model", path, "--dataset", "tea", folder / "tea/features/P01_tea.npy",
                 "--output", tmp_path / "stream.tsv")
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "stream.tsv").read_text().splitlines()
    assert [line.split("\t")[1] for line in lines] == (tmp_path / "out/P01_tea.txt").read_text().splitlines()
    assert "frames/s" in result.stderr and "95th percentile" in result.stderr


def test_stream_benchmark_runs_its_demo_size_from_a_video_and_from_features(tmp_path):
    """benchmarks/stream.py builds its bundles by hand: they must stay loadable and streamable."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("benchmark_stream", Path(__file__).parents[1] / "benchmarks/stream.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "warm").mkdir()
    threads = torch.get_num_threads()  # measure() sets them
    try:
        for source in ("video", "features"):
            found = module.measure("demo", source, 6, 1, "cpu", tmp_path)
            assert found["frames"] == 6 and found["frames_per_s"] > 0
    finally:
        torch.set_num_threads(threads)
