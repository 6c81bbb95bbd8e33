"""Datasets read from precomputed per-frame features: where the arrays are, how they are oriented,
aligned and resampled, every bad input as an error naming the file, and the linear frame classifier
that turns them into the logits file of the recurrent stage."""

import json

import numpy as np
import pytest
import torch

from pipeline.data import load_dataset
from pipeline.data.dataset import resample_labels
from pipeline.data.precomputed import FeatureError, FeatureSource, orient
from pipeline.data.synthetic.features import FeatureModel, write_folder
from pipeline.dataset_spec import input_route
from pipeline.features.linear import LinearConfig, fit_linear, sample_frames, train_and_extract
from pipeline.features.logits import Logits, frame_accuracy

CLASSES = ["SIL", "take", "pour", "stir"]


def mstcn_folder(root, videos=8, dim=6, frames=40, layout="DxT", seed=0):
    """An MS-TCN folder: 8 participants' videos of 4 classes in order, features = one-hot-ish means + noise."""
    rng = np.random.default_rng(seed)
    (root / "groundTruth").mkdir(parents=True)
    (root / "features").mkdir()
    (root / "mapping.txt").write_text("".join(f"{i} {name}\n" for i, name in enumerate(CLASSES)))
    means = rng.normal(0, 3, (len(CLASSES), dim))
    for person in range(1, videos + 1):
        labels = np.repeat(np.arange(len(CLASSES)), frames // len(CLASSES))
        (root / "groundTruth" / f"P{person:02d}_tea.txt").write_text("".join(f"{CLASSES[c]}\n" for c in labels))
        values = (means[labels] + rng.normal(0, 1, (len(labels), dim))).astype(np.float32)
        np.save(root / "features" / f"P{person:02d}_tea.npy", values.T if layout == "DxT" else values)
    return root


def spec(root, **changes):
    return {"name": "toy", "format": "mstcn", "annotations": str(root), "fps": 15, "background": "SIL", **changes}


def test_mstcn_folder_defaults_to_its_features_and_reads_them_in_either_orientation(tmp_path):
    for layout in ("DxT", "TxD"):
        root = mstcn_folder(tmp_path / layout, layout=layout)
        assert input_route(spec(root)) == "features"
        dataset = load_dataset(spec(root))
        assert dataset.videos["P01_tea"].features_path == root / "features" / "P01_tea.npy"
        source = FeatureSource(dataset)
        assert source.read("P01_tea").shape == (40, 6) and source.array("P01_tea").layout == layout
    same = [FeatureSource(load_dataset(spec(tmp_path / layout))).read("P03_tea") for layout in ("DxT", "TxD")]
    np.testing.assert_array_equal(*same)


def test_ambiguous_orientation_follows_the_datasets_dimension():
    assert orient("a.npy", (40, 30), 40, 2, None).layout == "TxD"  # only the first axis is 40 +- 2
    assert orient("a.npy", (40, 40), 40, 2, None).layout == "DxT"  # both: MS-TCN's D x T
    assert orient("a.npy", (40, 40), 40, 2, 40).dim == 40
    found = orient("a.npy", (39, 40), 40, 2, 39)  # both fit; D = 39 only as D x T
    assert (found.layout, found.dim, found.frames) == ("DxT", 39, 40)
    found = orient("a.npy", (39, 40), 40, 2, 40)
    assert (found.layout, found.dim, found.frames) == ("TxD", 40, 39)


def test_route_rules(tmp_path):
    root = mstcn_folder(tmp_path / "f")
    assert input_route(spec(root, videos="v")) == "videos"
    with pytest.raises(ValueError, match="either 'videos'.*or 'features'.*not both"):
        input_route(spec(root, videos="v", features="f"))
    (tmp_path / "bare").mkdir()
    with pytest.raises(ValueError, match=r"neither 'videos' nor 'features' is given \(nor is there a features folder .*bare/features\)"):
        input_route(spec(tmp_path / "bare"))
    assert input_route({"name": "x", "format": "breakfast", "annotations": "a", "features": "f", "fps": 15}) == "features"


def test_features_are_aligned_and_resampled_as_labels_are(tmp_path):
    root = mstcn_folder(tmp_path, frames=40)
    features = root / "features"
    np.save(features / "P01_tea.npy", np.arange(37 * 6, dtype=np.float32).reshape(37, 6).T)  # 3 short: padded
    np.save(features / "P02_tea.npy", np.arange(43 * 6, dtype=np.float32).reshape(43, 6).T)  # 3 long: dropped
    dataset = load_dataset(spec(root))
    source = FeatureSource(dataset, fps=10, tolerance_frames=3)
    reports = {r.video: r for r in source.check(progress=None)}
    assert (reports["P01_tea"].action, reports["P02_tea"].action, reports["P03_tea"].action) == \
        ("padded 3", "dropped 3", "exact")
    # 40 labels at 15 fps -> 27 at 10 fps; row k of the features is frame k of the labels
    labels = source.labels("P01_tea")
    assert labels.tolist() == resample_labels(dataset.videos["P01_tea"].labels, 15, 10).tolist()
    rows = source.read("P01_tea")[:, 0] / 6
    expected = np.minimum(np.floor(np.arange(27) * 1.5 + 1e-9), 36)  # the last 3 labelled frames repeat row 36
    assert rows.tolist() == expected.tolist()
    assert source.read("P02_tea").shape == (27, 6)


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "P02_tea.npy").unlink(), r"1 of 8 videos have no feature array, e\.g\. .*P02_tea\.npy"),
    (lambda f: np.save(f / "P02_tea.npy", np.zeros((6, 40, 1), np.float32)), r"P02_tea\.npy: expected a 2-D array"),
    (lambda f: np.save(f / "P02_tea.npy", np.zeros((5, 40), np.float32)), r"P02_tea\.npy: 5 feature dimensions.*other arrays have 6"),
    (lambda f: np.save(f / "P02_tea.npy", np.zeros((6, 25), np.float32)), r"P02_tea\.npy: shape \(6, 25\) has no axis matching the video's 40"),
    (lambda f: np.save(f / "P02_tea.npy", np.full((6, 40), np.nan, np.float32)), r"P02_tea\.npy: contains NaN or infinite"),
    (lambda f: np.save(f / "P02_tea.npy", np.array([[np.inf] * 40] * 6)), r"P02_tea\.npy: contains NaN or infinite"),
    (lambda f: (f / "P02_tea.npy").write_text("not an array"), r"P02_tea\.npy: not a readable \.npy array"),
    (lambda f: np.save(f / "P02_tea.npy", np.array([["a"] * 40] * 6)), r"P02_tea\.npy: expected real numbers"),
    # finite on disk, infinite in the float32 the pipeline computes in
    (lambda f: np.save(f / "P02_tea.npy", np.where(np.eye(6, 40) > 0, 1e300, 0.5)),
     r"P02_tea\.npy: contains NaN or infinite values \(as float32"),
    # an .npz archive under a .npy name
    (lambda f: np.savez(f / "P02_tea.npy", features=np.zeros((6, 40))) or (f / "P02_tea.npy.npz").rename(f / "P02_tea.npy"),
     r"P02_tea\.npy: an \.npz archive \(holding \['features'\]\), not a \.npy array"),
    # one video of a huge constant would set every video's standardisation
    (lambda f: np.save(f / "P02_tea.npy", np.full((6, 40), 2**62, np.int64)),
     r"P02_tea\.npy: values of magnitude 4\.61e\+18 \(root mean square\), .* times the median"),
])
def test_bad_feature_arrays_are_errors_naming_the_file(tmp_path, damage, message):
    root = mstcn_folder(tmp_path)
    damage(root / "features")
    with pytest.raises(FeatureError, match=message):
        FeatureSource(load_dataset(spec(root))).check(progress=None)


def test_every_bad_array_is_reported_at_once(tmp_path):
    root = mstcn_folder(tmp_path)
    np.save(root / "features" / "P02_tea.npy", np.full((6, 40), np.nan, np.float32))
    np.save(root / "features" / "P05_tea.npy", np.zeros((7, 40), np.float32))
    np.savez(root / "features" / "P07_tea.npz", np.zeros((6, 40)))
    (root / "features" / "P07_tea.npz").rename(root / "features" / "P07_tea.npy")
    with pytest.raises(FeatureError, match=r"3 feature arrays cannot be used:\n.*P02_tea.*\n.*P05_tea.*\n.*P07_tea.*npz") \
            as error:
        FeatureSource(load_dataset(spec(root))).check(progress=None)
    assert "P03_tea" not in str(error.value)


def test_real_scale_differences_pass_the_magnitude_check(tmp_path):
    # features of one extractor differ between videos in scale, but not by orders of magnitude
    root = mstcn_folder(tmp_path)
    for person, factor in ((2, 8.0), (5, 0.125)):
        path = root / "features" / f"P0{person}_tea.npy"
        np.save(path, np.load(path) * factor)
    reports = FeatureSource(load_dataset(spec(root))).check(progress=None)
    assert len(reports) == 8 and all(r.rms > 0 for r in reports)


def test_linear_step_refuses_non_finite_and_extreme_features_naming_the_file(tmp_path):
    # run on its own, without check-features first: every array it reads must still be usable
    root = mstcn_folder(tmp_path / "data")
    dataset = load_dataset(spec(root))
    test_video = dataset.split(1).test[0]
    values = np.load(root / "features" / f"{test_video}.npy")
    values[2, 5] = np.inf
    np.save(root / "features" / f"{test_video}.npy", values)
    with pytest.raises(FeatureError, match=rf"{test_video}\.npy: contains NaN or infinite values"):
        train_and_extract(dataset, 1, FeatureSource(dataset), LinearConfig(max_frames=100), tmp_path / "a.h5",
                          tmp_path / "work")
    assert not (tmp_path / "a.h5").exists()  # nothing half-written
    mstcn_folder(tmp_path / "data2")
    train_video = dataset.split(1).train[0]
    np.save(tmp_path / "data2" / "features" / f"{train_video}.npy", np.full((6, 40), 1e30, np.float32))
    dataset = load_dataset(spec(tmp_path / "data2"))
    with pytest.raises(FeatureError, match=rf"{train_video}\.npy: values of magnitude 1e\+30"):
        train_and_extract(dataset, 1, FeatureSource(dataset), LinearConfig(max_frames=100), tmp_path / "b.h5",
                          tmp_path / "work2")


def test_a_square_array_is_read_as_d_by_t_with_a_note_or_as_the_dataset_says(tmp_path, caplog):
    root = mstcn_folder(tmp_path, dim=40, frames=40)  # T = D = 40: both orientations fit
    square = np.load(root / "features" / "P01_tea.npy")
    reports = {r.video: r for r in FeatureSource(load_dataset(spec(root))).check(progress=None)}
    assert reports["P01_tea"].layout == "DxT"
    assert "orientation ambiguous" in reports["P01_tea"].note and "feature_layout: TxD" in reports["P01_tea"].note
    assert any("P01_tea.npy: orientation ambiguous" in record.getMessage() for record in caplog.records)
    fixed = FeatureSource(load_dataset(spec(root, feature_layout="TxD")))
    np.testing.assert_array_equal(fixed.read("P01_tea"), square)
    np.testing.assert_array_equal(FeatureSource(load_dataset(spec(root))).read("P01_tea"), square.T)
    assert fixed.check(progress=None)[0].note == ""  # fixed by the dataset: nothing ambiguous
    with pytest.raises(ValueError, match="feature_layout must be one of"):
        load_dataset(spec(root, feature_layout="TD"))


def test_features_that_name_a_file_say_so(tmp_path):
    root = mstcn_folder(tmp_path / "data")
    with pytest.raises(FeatureError, match=r"P01_tea\.npy: dataset 'toy''s 'features' is a file; it must be the folder"):
        load_dataset(spec(root, features=str(root / "features" / "P01_tea.npy")))


def test_sampling_keeps_every_video_and_bounds_the_sample():
    picks = sample_frames([100, 7, 2000], max_frames=300, seed=1)
    assert all(len(p) >= 1 for p in picks) and sum(len(p) for p in picks) <= 300 + 3
    assert all(np.all(np.diff(p) == 8) for p in picks if len(p) > 1)  # stride ceil(2107 / 300)
    assert [p.tolist() for p in picks] == [p.tolist() for p in sample_frames([100, 7, 2000], 300, seed=1)]
    assert [len(p) for p in sample_frames([10, 20], 1000, 0)] == [10, 20]  # small data: every frame


def test_linear_classifier_is_deterministic_and_learns():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    x = torch.from_numpy((np.eye(3)[y] * 2 + rng.normal(0, 0.5, (600, 3)) + 10).astype(np.float32))
    first, summary = fit_linear(x.clone(), torch.from_numpy(y), 3, LinearConfig(iterations=50))
    second, _ = fit_linear(x.clone(), torch.from_numpy(y), 3, LinearConfig(iterations=50))
    assert summary["train_accuracy"] > 0.95
    torch.testing.assert_close(first.linear.weight, second.linear.weight, rtol=0, atol=0)
    # the model standardises new data itself
    assert (first(x).argmax(1).numpy() == y).mean() > 0.95


def test_linear_step_writes_the_logits_file_of_the_split(tmp_path):
    root = mstcn_folder(tmp_path / "data")
    dataset = load_dataset(spec(root))
    source = FeatureSource(dataset, fps=15)
    metrics = train_and_extract(dataset, 1, source, LinearConfig(max_frames=100), tmp_path / "logits.h5",
                                tmp_path / "work")
    assert metrics["sample_frames"] <= 100 + 6 and metrics["test_accuracy"] > 0.9
    with Logits(tmp_path / "logits.h5") as logits:
        assert sorted(logits.names("train")) == sorted(dataset.split(1).train)
        assert sorted(logits.names("test")) == sorted(dataset.split(1).test)
        assert logits.logits("P01_tea").shape == (40, 4) and logits.class_names == CLASSES
        assert logits.background == "SIL" and logits.model["classifier"] == "linear"
    assert frame_accuracy(tmp_path / "logits.h5")["frame_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert json.loads((tmp_path / "work/metrics.json").read_text())["test_frames"] == metrics["test_frames"]


def test_relabel_merges_classes_and_moves_the_background(tmp_path):
    root = mstcn_folder(tmp_path)
    dataset = load_dataset(spec(root, relabel={"SIL": "background", "stir": "background"}, background="background"))
    assert dataset.class_names == ["background", "take", "pour"] and dataset.background_id == 0
    assert sorted(set(dataset.videos["P01_tea"].labels.tolist())) == [0, 1, 2]
    with pytest.raises(ValueError, match="relabel names classes it does not have: \\['boil'\\]"):
        load_dataset(spec(root, relabel={"boil": "x"}))


def test_synthesised_features_follow_the_labels(tmp_path):
    source = mstcn_folder(tmp_path / "gt")
    videos = write_folder(source, tmp_path / "out", model=FeatureModel(dim=5, noise=0.1, drift=0.1),
                          participants=4, videos_per_participant=1)
    assert videos == ["P01_tea", "P03_tea", "P06_tea", "P08_tea"]  # 4 participants spread over 8
    dataset = load_dataset(spec(tmp_path / "out"))
    features = FeatureSource(dataset).read("P03_tea")
    assert features.shape == (40, 5)
    labels = dataset.videos["P03_tea"].labels
    centroids = np.stack([features[labels == c].mean(0) for c in range(4)])
    nearest = np.linalg.norm(features[:, None] - centroids[None], axis=2).argmin(1)
    assert (nearest == labels).mean() > 0.95  # low noise: classes are apart
