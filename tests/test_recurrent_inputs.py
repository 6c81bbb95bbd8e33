"""Beyond the paper's protocol in the recurrent stage: a dataset's precomputed features themselves as the
input (standardised, read a window at a time, optionally projected), and groups of three or more
datasets trained jointly with one DDBN domain each."""

import numpy as np
import pytest
import torch

from pipeline.data import load_dataset
from pipeline.data.precomputed import FeatureSource
from pipeline.features.linear import LinearConfig, train_and_extract
from pipeline.training.config import RecurrentConfig
from pipeline.training.inputs import FeatureInput, Layout, WindowSampler, batch_sizes
from pipeline.training.recurrent import train_recurrent
from pipeline.training.sequences import load_split
from pipeline.training.windows import gather_windows
from tests.test_precomputed import mstcn_folder, spec
from tests.test_training import fake_logits


@pytest.fixture(scope="module")
def with_features(tmp_path_factory):
    """An MS-TCN folder with 6-d features, its split-1 logits file, and the FeatureSource of its features."""
    root = tmp_path_factory.mktemp("features")
    mstcn_folder(root / "toy", dim=6, frames=40)
    dataset = load_dataset(spec(root / "toy"))
    source = FeatureSource(dataset, fps=15)
    train_and_extract(dataset, 1, source, LinearConfig(max_frames=200), root / "toy.h5", root / "work")
    return load_split(root / "toy.h5"), source


def config(**changes):
    values = {"protocol": "joint", "model": "ddlstm", "layers": 1, "hidden": 8, "history": 6, "batch_size": 12,
              "iterations": 12, "lr": 0.1, "momentum": 0.9, "checkpoint_every": 50, "log_every": 4,
              "eval_batch": 16, "seed": 0, "device": "cpu"}
    return RecurrentConfig(**{**values, **changes})


def test_features_are_standardised_with_the_training_frames_statistics(with_features):
    split, source = with_features
    features = FeatureInput(source, split)
    train = np.concatenate([features.read(s.name) for s in split.subset("train")])
    np.testing.assert_allclose(train.mean(0), 0, atol=1e-5)  # every frame in the sample (200 >= 6 x 40 / 2)
    np.testing.assert_allclose(train.std(0), 1, atol=1e-4)


@pytest.mark.parametrize("input_layout", ["blocks", "shared"])
def test_feature_windows_read_lazily_equal_windows_of_the_whole_video(with_features, tmp_path, input_layout):
    split, source = with_features
    other = load_split(fake_logits(tmp_path / "b.h5", "beta", 3, 2, boundary=False))
    layout = Layout([split, other], input_layout, [FeatureInput(source, split), None])
    assert layout.widths == [6, 3]
    assert layout.input_size == (9 if input_layout == "blocks" else 6)
    sequence = split.subset("train")[0]
    ends = np.array([0, 3, 17, 39])
    for align in ("end", "start"):
        lazy, lazy_mask = layout.windows(0, sequence, ends, 8, align)
        whole, whole_mask = gather_windows(layout.features(0, sequence), ends, 8, align)
        np.testing.assert_array_equal(lazy_mask, whole_mask)
        np.testing.assert_allclose(lazy, whole, rtol=0, atol=0)
    # a dataset that feeds its logits: in its own columns (blocks) or the same leading ones (shared)
    logits = layout.features(1, other.subset("train")[0])
    start = 6 if input_layout == "blocks" else 0
    np.testing.assert_allclose(logits[:, start:start + 3], other.standardised(other.subset("train")[0]))


def test_the_sampler_holds_no_features_of_a_features_dataset(with_features, tmp_path):
    split, source = with_features
    other = load_split(fake_logits(tmp_path / "b.h5", "beta", 3, 2))
    layout = Layout([split, other], "blocks", [FeatureInput(source, split), None])
    sampler = WindowSampler(layout, config())
    assert all(features is None for features, _, _ in sampler.videos[0])  # read a window at a time
    assert all(features is not None for features, _, _ in sampler.videos[1])
    x, _, _, sizes = sampler.batch(3)
    assert x.shape == (12, 6, 9) and sizes == [6, 6]
    assert torch.equal(x, sampler.batch(3)[0])  # a function of (seed, iteration)


def test_a_run_on_features_with_a_projection_trains_and_scores(with_features, tmp_path):
    split, source = with_features
    other = load_split(fake_logits(tmp_path / "b.h5", "beta", 3, 2))
    results = train_recurrent([split, other], config(inputs="features", input_projection=4, iterations=30,
                                                     model="lstm"), tmp_path / "run", feature_sources=[source, None])
    assert set(results) == {"toy", "beta"} and results["toy"]["accuracy"] > 25  # 4 classes in order, 40 frames
    state = torch.load(tmp_path / "run/checkpoint.pt", weights_only=True)["model"]
    assert state["projection.weight"].shape == (4, 9)
    with pytest.raises(ValueError, match="none of the run's datasets has precomputed features"):
        train_recurrent([split, other], config(inputs="features"), tmp_path / "x", feature_sources=[None, None])


def test_three_dataset_groups_share_the_batch_evenly_and_train_three_domains(with_features, tmp_path):
    assert batch_sizes(config(batch_size=12), 0, 3) == [4, 4, 4]
    assert batch_sizes(config(batch_size=13), 0, 3) == [5, 4, 4]
    assert batch_sizes(config(batch_size=12, domain_share=0.25), 0, 2) == [3, 9]  # a pair keeps domain_share
    split, _ = with_features
    group = [split, load_split(fake_logits(tmp_path / "b.h5", "beta", 3, 2)),
             load_split(fake_logits(tmp_path / "c.h5", "gamma", 4, 3))]
    results = train_recurrent(group, config(iterations=16), tmp_path / "group")
    assert set(results) == {"toy", "beta", "gamma"}
    header = (tmp_path / "group/alphas.csv").read_text().splitlines()[0].split(",")
    assert header == ["iteration", "layer", *[f"alpha_{k}" for k in range(1, 7)]]  # d (d - 1) = 6 per layer
    state = torch.load(tmp_path / "group/checkpoint.pt", weights_only=True)["model"]
    assert state["recurrent.layers.0.norm_x.running_mean"].shape[0] == 3  # statistics of three domains
    with pytest.raises(ValueError, match="protocol 'pretrain_finetune' takes 2 dataset"):
        train_recurrent(group, config(protocol="pretrain_finetune"), tmp_path / "y")
