"""The joint frame classifier of a pair of datasets: one dual-domain BN-Inception fine-tuned on batches
half from each (loss falls, alphas learned within their bounds, exact resume), extraction of each
dataset's logits from it with its domain flag, and the features route's joint linear classifier."""

import json
import math

import numpy as np
import pytest
import torch

from pipeline.data import load_dataset
from pipeline.data.frames import store_dataset
from pipeline.data.precomputed import FeatureSource
from pipeline.data.synthetic import Sizes, generate
from pipeline.features.extract import extract_logits
from pipeline.features.finetune import load_classifier
from pipeline.features.frame_batches import Preprocess, SplitFrames
from pipeline.features.joint import JointFinetuneConfig, finetune_joint, joint_network
from pipeline.features.joint_linear import JointLinearConfig, train_and_extract_joint
from pipeline.features.logits import Logits, frame_accuracy
from pipeline.models.ddbn2d import ddbn_layers

NAMES = ("synbreakfast", "syncooking")


@pytest.fixture(scope="module")
def pair_frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("joint")
    specs = generate(root / "data", seed=5, sizes=Sizes(participants=4, videos_per_participant=1, frame_size=32,
                                                          pace=0.5), names=NAMES)
    frames = []
    for name in NAMES:
        dataset = load_dataset(specs[name])
        store_dataset(dataset, root / "frames" / name, "npy", progress=None)
        frames.append(SplitFrames(dataset, 1, root / "frames" / name))
    return frames


def config(**changes):
    values = {"backbone_args": {"width_multiplier": 0.25}, "input_size": 32, "epochs": 2, "batch_size": 16,
              "frames_per_epoch": 64, "lr": 0.05, "checkpoint_every": 3, "eval_stride": 4, "seed": 1}
    return JointFinetuneConfig(**{**values, **changes})


@pytest.fixture(scope="module")
def trained(pair_frames, tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    finetune_joint(pair_frames, config(), folder)
    return folder


def read_csv(path):
    import csv

    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_joint_finetuning_learns_both_datasets_and_their_alphas(pair_frames, trained):
    metrics = read_csv(trained / "metrics.csv")
    assert [row["steps"] for row in metrics] == ["8", "16"]  # 64 frames of each dataset per epoch, 8 of each a step
    assert set(metrics[0]) >= {"train_loss", "train_accuracy synbreakfast", "test_accuracy syncooking"}
    # 16 steps of a network from random weights on 32-pixel frames move an epoch's mean loss by less than its
    # noise (with one thread it rose, with two it fell), so what is checked is that training ran on both
    # datasets: a finite loss, and the backbone and both heads away from their initial weights
    assert all(math.isfinite(float(row["train_loss"])) for row in metrics)
    settings = config()
    torch.manual_seed(settings.seed)  # as finetune_joint builds its network
    initial = joint_network(settings.backbone, settings.backbone_args, [len(f.class_names) for f in pair_frames],
                            settings.alpha_init).state_dict()
    final = torch.load(trained / "model.pt", weights_only=True)["model"]
    assert final.keys() == initial.keys()
    stem = "backbone.stem.0.0.weight"  # the first convolution
    assert initial[stem].dim() == 4
    for key in ("heads.0.weight", "heads.1.weight", stem):
        assert not torch.equal(final[key], initial[key]), key
    alphas = read_csv(trained / "alphas.csv")
    layers = {row["layer"] for row in alphas}
    assert len(layers) == 69  # every BN of BN-Inception, one alpha pair each
    first = {row["layer"]: row for row in alphas if row["iteration"] == "0"}
    last = {row["layer"]: row for row in alphas if row["iteration"] == "16"}
    values = [float(row[k]) for row in last.values() for k in ("alpha_1", "alpha_2")]
    assert all(0.5 <= v <= 1.0 for v in values)  # n_i / N = 0.5 with 8 + 8 frames
    assert all(float(row["alpha_1"]) == 0.75 for row in first.values())
    assert max(abs(float(last[k]["alpha_1"]) - 0.75) for k in last) > 1e-3  # learned, not left at 0.75
    assert json.loads((trained / "config.json").read_text())["datasets"] == list(NAMES)


def test_killed_joint_finetuning_resumes_to_the_same_weights(pair_frames, trained, tmp_path):
    def kill_after_step_5(step):
        if step == 5:  # the last checkpoint was after step 3
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune_joint(pair_frames, config(), tmp_path, on_step=kill_after_step_5)
    assert not (tmp_path / "model.pt").exists()
    finetune_joint(pair_frames, config(), tmp_path)
    whole, resumed = (torch.load(folder / "model.pt", weights_only=True)["model"] for folder in (trained, tmp_path))
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key
    assert (tmp_path / "alphas.csv").read_text() == (trained / "alphas.csv").read_text()


def test_each_datasets_logits_come_from_its_head_and_its_population_statistics(pair_frames, trained, tmp_path):
    for domain, frames in enumerate(pair_frames):
        output = tmp_path / f"{frames.dataset.name}.h5"
        extract_logits(frames, trained / "model.pt", output, batch_size=32, device="cpu")
        model, saved = load_classifier(trained / "model.pt", dataset=frames.dataset.name)
        assert model.domain == domain and saved["class_names"] == frames.class_names
        video = frames.videos[0]
        with Logits(output) as logits:
            assert logits.logits(video.name).shape == (len(video.labels), len(frames.class_names))
            assert logits.model["trained_on"] == f"synbreakfast+syncooking split 1 (joint, domain {domain + 1})"
            preprocess = Preprocess(32, model.pretrained_cfg["mean"], model.pretrained_cfg["std"], train=False)
            images, _ = frames.read(np.stack([np.zeros(4, int), np.arange(4)], 1))
            with torch.no_grad():
                by_hand = model(preprocess(images)).numpy()
                other = model.joint(preprocess(images), domain=1 - domain)
            np.testing.assert_allclose(logits.logits(video.name)[:4], by_hand, rtol=1e-4, atol=1e-4)
            if other.shape == by_hand.shape:  # the other domain's statistics and head give other logits
                assert np.abs(other.numpy() - by_hand).max() > 1e-3
        assert 0 <= frame_accuracy(output)["frame_accuracy"] <= 1
    assert len(ddbn_layers(model)) == 69
    with pytest.raises(ValueError, match="a joint classifier of synbreakfast and syncooking, not of 'other'"):
        load_classifier(trained / "model.pt", dataset="other")


def test_a_joint_batch_needs_frames_of_both_datasets(pair_frames, tmp_path):
    with pytest.raises(ValueError, match="batch_size >= 2"):
        finetune_joint(pair_frames, config(batch_size=1), tmp_path)
    with pytest.raises(ValueError, match="two datasets"):
        finetune_joint(pair_frames[:1], config(), tmp_path)


CLASSES = ["SIL", "take", "pour", "stir"]


def mstcn_folder(root, seed, dim=6, shift=0.0):
    """8 participants' videos of 4 classes in order, features = class means + noise (+ a dataset's shift)."""
    rng = np.random.default_rng(seed)
    (root / "groundTruth").mkdir(parents=True)
    (root / "features").mkdir()
    (root / "mapping.txt").write_text("".join(f"{i} {name}\n" for i, name in enumerate(CLASSES)))
    means = rng.normal(0, 3, (len(CLASSES), dim)) + shift
    for person in range(1, 9):
        labels = np.repeat(np.arange(len(CLASSES)), 10)
        (root / "groundTruth" / f"P{person:02d}_tea.txt").write_text("".join(f"{CLASSES[c]}\n" for c in labels))
        values = (means[labels] + rng.normal(0, 1, (len(labels), dim))).astype(np.float32)
        np.save(root / "features" / f"P{person:02d}_tea.npy", values.T)
    return {"format": "mstcn", "annotations": str(root), "fps": 15, "background": "SIL"}


def test_the_joint_linear_classifier_is_deterministic_and_learns_both_datasets(tmp_path):
    datasets = [load_dataset({"name": name, **mstcn_folder(tmp_path / name, seed, shift=shift)})
                for name, seed, shift in (("one", 0, 0.0), ("two", 1, 20.0))]
    sources = [FeatureSource(dataset, fps=15) for dataset in datasets]
    settings = JointLinearConfig(steps=200, batch_size=32, lr=0.1)
    results = []
    for run in ("a", "b"):
        outputs = [tmp_path / run / f"{d.name}.h5" for d in datasets]
        results.append(train_and_extract_joint(datasets, 1, sources, settings, outputs, tmp_path / run / "work"))
        for output, dataset in zip(outputs, datasets):
            with Logits(output) as logits:
                assert logits.logits("P01_tea").shape == (40, 4) and logits.dataset == dataset.name
            assert frame_accuracy(output)["frame_accuracy"] == results[-1][f"test_accuracy {dataset.name}"]
    assert results[0]["test_accuracy one"] > 0.9 and results[0]["test_accuracy two"] > 0.9
    assert (tmp_path / "a/one.h5").exists() and results[0]["train_loss"] == results[1]["train_loss"]
    alphas = read_csv(tmp_path / "a/work/alphas.csv")
    assert {row["layer"] for row in alphas} == {"1"} and alphas[0]["alpha_1"] == "0.75"
    assert all(0.5 <= float(row[k]) <= 1.0 for row in alphas for k in ("alpha_1", "alpha_2"))
    assert json.loads((tmp_path / "a/work/metrics.json").read_text())["datasets"] == ["one", "two"]


def test_the_joint_linear_classifier_needs_one_feature_dimension(tmp_path):
    datasets = [load_dataset({"name": name, **mstcn_folder(tmp_path / name, 0, dim=dim)})
                for name, dim in (("one", 6), ("two", 5))]
    sources = [FeatureSource(dataset, fps=15) for dataset in datasets]
    with pytest.raises(ValueError, match="one has 6-d features and two 5-d"):
        train_and_extract_joint(datasets, 1, sources, JointLinearConfig(steps=5), [tmp_path / "a.h5", tmp_path / "b.h5"],
                                tmp_path / "work")
