"""Frame features: the BN-Inception model, fine-tuning (loss falls, exact resume), logit extraction
to the documented HDF5 layout, the None row, and errors for bad weights and misaligned frames; the
loader processes (the same batches as in-process loading, an exact resume across worker counts,
the same logits, processes ended on errors) and the precision switch (fp32 on the CPU by default,
bf16 autocast when asked)."""

import json
import multiprocessing

import h5py
import numpy as np
import pytest
import timm
import torch

from pipeline.data import load_dataset
from pipeline.data.frames import store_dataset
from pipeline.data.synthetic import Sizes, generate
from pipeline.features import WeightsError, create_backbone, frame_accuracy
from pipeline.features.extract import extract_logits, extraction_batches, frame_logits
from pipeline.features.finetune import FinetuneConfig, finetune, load_classifier
from pipeline.features.frame_batches import (
    BatchLoader,
    EvaluationBatches,
    Preprocess,
    SplitFrames,
    TrainingBatches,
    resolve_precision,
    resolve_workers,
)

TINY_NET = {"width_multiplier": 0.25}


@pytest.fixture(scope="module")
def split_frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    specs = generate(root / "data", seed=5, sizes=Sizes(participants=4, videos_per_participant=1, frame_size=32,
                                                          pace=0.5), names=("synbreakfast",))
    dataset = load_dataset(specs["synbreakfast"])
    store_dataset(dataset, root / "frames", "npy", progress=None)
    return SplitFrames(dataset, 1, root / "frames")


def config(**changes):
    values = {"backbone_args": TINY_NET, "input_size": 32, "epochs": 3, "batch_size": 16, "lr": 0.01,
              "checkpoint_every": 2, "eval_stride": 4, "seed": 1}
    return FinetuneConfig(**{**values, **changes})


@pytest.fixture(scope="module")
def trained(split_frames, tmp_path_factory):
    """A classifier fine-tuned for one epoch (fp32, in-process loading), for the extraction tests."""
    return finetune(split_frames, config(epochs=1), tmp_path_factory.mktemp("trained"))


def todays_evaluation_input(preprocess: Preprocess, frames: np.ndarray) -> torch.Tensor:
    """Evaluation's preprocessing as it was written before the loader processes (the reference)."""
    height, width = frames.shape[1:3]
    crop = min(height, width, preprocess.input_size)
    top, left = (height - crop) // 2, (width - crop) // 2
    x = torch.from_numpy(frames[:, top : top + crop, left : left + crop]).permute(0, 3, 1, 2).float()
    if crop != preprocess.input_size:
        x = torch.nn.functional.interpolate(x, size=(preprocess.input_size,) * 2, mode="bilinear",
                                            align_corners=False, antialias=False)
    return x.sub_(preprocess.mean).mul_(preprocess.inverse_std)


def test_bninception_is_the_papers_network():
    model = timm.create_model("bninception", num_classes=1000)
    assert [block.out_channels for block in model.blocks] == [256, 320, 576, 576, 576, 608, 608, 1056, 1024, 1024]
    assert abs(sum(p.numel() for p in model.parameters()) - 11.29e6) < 0.01e6
    model.eval()
    with torch.no_grad():
        assert model.forward_features(torch.zeros(1, 3, 224, 224)).shape == (1, 1024, 7, 7)
        assert model(torch.zeros(2, 3, 224, 224)).shape == (2, 1000)
    data = timm.data.resolve_data_config({}, model=model)
    assert data["input_size"] == (3, 224, 224)
    assert np.allclose(np.array(data["mean"]) * 255, (128, 117, 104)) and np.allclose(np.array(data["std"]) * 255, 1)


def test_weights_from_a_local_file(tmp_path):
    source = create_backbone("bninception", 51, **TINY_NET)  # e.g. HMDB51's 51 classes
    torch.save({"state_dict": source.state_dict()}, tmp_path / "hmdb51.pth")
    target = create_backbone("bninception", 7, tmp_path / "hmdb51.pth", **TINY_NET)
    assert torch.equal(target.stem[0][0].weight, source.stem[0][0].weight)
    assert target.fc.out_features == 7  # another label set: a fresh classifier
    flipped = create_backbone("bninception", 7, tmp_path / "hmdb51.pth", reverse_channels=True, **TINY_NET)
    assert torch.equal(flipped.stem[0][0].weight, source.stem[0][0].weight.flip(1))
    # timm's own way to name a local weights file works too
    torch.save(source.state_dict(), tmp_path / "plain.pth")
    via_timm = timm.create_model("bninception", pretrained=True, num_classes=7,
                                 pretrained_cfg_overlay={"file": str(tmp_path / "plain.pth")}, **TINY_NET)
    assert torch.equal(via_timm.stem[0][0].weight, source.stem[0][0].weight)


def test_unreadable_weights_are_a_clear_error(tmp_path):
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match=r"broken\.pth: cannot read weights"):
        create_backbone("bninception", 5, tmp_path / "broken.pth", **TINY_NET)
    with pytest.raises(WeightsError, match=r"missing\.pth: initial weights file does not exist"):
        create_backbone("bninception", 5, tmp_path / "missing.pth", **TINY_NET)
    torch.save(create_backbone("bninception", 5, **TINY_NET).state_dict(), tmp_path / "narrow.pth")
    with pytest.raises(WeightsError, match=r"narrow\.pth: shapes differ from backbone 'bninception'"):
        create_backbone("bninception", 5, tmp_path / "narrow.pth")


def test_finetuning_lowers_the_loss(split_frames, tmp_path):
    finetune(split_frames, config(), tmp_path)
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0] == "epoch,steps,train_loss,train_accuracy,test_accuracy,lr,seconds" and len(rows) == 4
    losses = [float(row.split(",")[2]) for row in rows[1:]]
    assert losses[-1] < 0.9 * losses[0], losses  # 2.90 -> 2.47 measured (21 classes: ln 21 = 3.04)
    assert json.loads((tmp_path / "config.json").read_text())["input_size"] == 32


def test_killed_finetuning_resumes_to_the_same_weights(split_frames, tmp_path):
    run = {"epochs": 2, "frames_per_epoch": 96}  # 6 steps an epoch, of a random 96 of the 420 frames
    finetune(split_frames, config(**run), tmp_path / "whole")

    def kill_after_step_5(step):
        if step == 5:  # the last checkpoint was after step 4: step 5 is lost and redone
            raise KeyboardInterrupt

    # The killed run loads its frames in 2 worker processes, the whole one in this process.
    with pytest.raises(KeyboardInterrupt):
        finetune(split_frames, config(**run, workers=2), tmp_path / "killed", on_step=kill_after_step_5)
    assert multiprocessing.active_children() == []  # the loader processes ended with the run
    assert not (tmp_path / "killed/model.pt").exists()
    finetune(split_frames, config(**run, workers=2), tmp_path / "killed")
    assert multiprocessing.active_children() == []
    whole, killed = (torch.load(tmp_path / name / "model.pt", weights_only=True)["model"] for name in ("whole", "killed"))
    for key in whole:
        assert torch.equal(whole[key], killed[key]), key

    def without_time(path):
        return [line.rsplit(",", 1)[0] for line in path.read_text().splitlines()]

    assert without_time(tmp_path / "whole/metrics.csv") == without_time(tmp_path / "killed/metrics.csv")
    with pytest.raises(ValueError, match=r"checkpoint\.pt was written by a run with another configuration.*lr"):
        finetune(split_frames, config(**run, lr=0.1), tmp_path / "killed")


def test_extraction_writes_one_row_per_frame(split_frames, trained, tmp_path):
    model_path = trained
    output = extract_logits(split_frames, model_path, tmp_path / "split1.h5", batch_size=24)
    names = {v.name: v for v in split_frames.videos}
    with h5py.File(output) as handle:
        assert handle.attrs["dataset"] == "synbreakfast" and handle.attrs["split"] == 1
        assert handle.attrs["fps"] == 15.0
        assert json.loads(handle.attrs["class_names"]) == split_frames.class_names
        assert json.loads(handle.attrs["model"])["backbone"] == "bninception"
        assert json.loads(handle.attrs["model"])["precision"] == "fp32"  # precision auto, on the CPU
        assert set(handle) == set(names)
        for name, group in handle.items():
            assert group["logits"].dtype == np.float32
            assert group["logits"].shape == (len(names[name].labels), len(split_frames.class_names))
            assert np.array_equal(group["labels"][()], names[name].labels)
            assert group.attrs["subset"] == names[name].subset
        # The stored logits are the classifier's own outputs on the evaluation crop, in float32:
        # bit for bit what the network gave for each batch of 24 frames before the precision switch.
        video = split_frames.videos[0]
        model, _saved = load_classifier(model_path)
        preprocess = Preprocess(32, model.pretrained_cfg["mean"], model.pretrained_cfg["std"], train=False)
        frames = split_frames.store(video).read(np.arange(len(video.labels)))
        with torch.no_grad():
            direct = np.concatenate([model(todays_evaluation_input(preprocess, frames[start : start + 24])).numpy()
                                     for start in range(0, len(frames), 24)])
        assert np.array_equal(handle[video.name]["logits"][()], direct)
        # frame_logits on the same batches gives the same rows (what `predict` relies on)
        again = np.concatenate([frame_logits(model, preprocess, frames[start : start + 24], "cpu", "auto")
                                for start in range(0, len(frames), 24)])
        assert again.dtype == np.float32 and np.array_equal(again, direct)
        test_names = [n for n, g in handle.items() if g.attrs["subset"] == "test"]
        correct = sum(int((handle[n]["logits"][()].argmax(1) == handle[n]["labels"][()]).sum()) for n in test_names)
        frames_total = sum(len(handle[n]["labels"]) for n in test_names)
    result = frame_accuracy(output)
    assert result["frames"] == frames_total and result["frame_accuracy"] == pytest.approx(correct / frames_total)


def test_frames_decoded_at_another_rate_are_refused(split_frames, tmp_path):
    other = SplitFrames(split_frames.dataset, 1, split_frames.videos[0].store_path.parent, fps=7.5)
    with pytest.raises(ValueError, match=r"has \d+ frames but video .* labels at 7.5 fps"):
        other.check()


def test_any_timm_backbone_by_name():
    model = create_backbone("resnet10t", 5)
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 5)
    with pytest.raises(ValueError, match="unknown backbone 'no_such_net'"):
        create_backbone("no_such_net", 5)


def test_a_finished_run_restarted_writes_its_outputs_again(split_frames, tmp_path):
    finetune(split_frames, config(epochs=1), tmp_path)
    metrics = (tmp_path / "metrics.csv").read_text()
    (tmp_path / "metrics.csv").unlink()
    (tmp_path / "model.pt").unlink()
    finetune(split_frames, config(epochs=1), tmp_path)  # the workflow deletes outputs before a rerun
    assert (tmp_path / "metrics.csv").read_text() == metrics and (tmp_path / "model.pt").exists()


def test_loader_processes_give_todays_batches(split_frames, tmp_path):
    """Fine-tuning's batches (frames, crops, flips, dropout seeds) and evaluation's crops are the
    same from 2 worker processes as from this process, and as the code before the loader computed
    them; from HDF5 stores too (each worker opens its own)."""
    model = create_backbone("bninception", 3, **TINY_NET)
    train = Preprocess(32, model.pretrained_cfg["mean"], model.pretrained_cfg["std"], train=True)
    rows = split_frames.frame_index("train")
    seed, per_epoch, batch = 3, 48, 16
    expected = []
    for epoch in range(2):  # fine-tuning's step before the loader, written out
        order = np.random.default_rng([seed, epoch]).permutation(len(rows))[:per_epoch]
        for k in range(per_epoch // batch):
            rng = np.random.default_rng([seed, epoch, k])
            dropout_seed = int(rng.integers(2**62))
            images, labels = split_frames.read(rows[order[k * batch : (k + 1) * batch]])
            expected.append((train(images, rng), labels, dropout_seed))
    steps = TrainingBatches(split_frames, train, rows, per_epoch, batch, seed)
    for workers in (0, 2):
        with BatchLoader(steps, range(1, 6), workers) as loader:  # from step 1, as a resumed run
            got = list(loader)
        assert [number for number, *_ in got] == [1, 2, 3, 4, 5]
        for (_, inputs, labels, dropout_seed), (want, want_labels, want_seed) in zip(got, expected[1:], strict=True):
            assert torch.equal(inputs, want) and np.array_equal(labels.numpy(), want_labels)
            assert dropout_seed == want_seed
    assert multiprocessing.active_children() == []

    store_dataset(split_frames.dataset, tmp_path / "h5", "h5", progress=None)
    h5_frames = SplitFrames(split_frames.dataset, 1, tmp_path / "h5", "h5")
    h5_frames.check()  # opens every store here before the workers start
    plan = [r for _, _, r in extraction_batches(h5_frames, 50)]
    for input_size in (24, 40):  # a crop of the 32-pixel frames, and a crop resized up
        evaluation = Preprocess(input_size, model.pretrained_cfg["mean"], model.pretrained_cfg["std"], train=False)
        for workers in (0, 2):
            batches = EvaluationBatches(h5_frames, evaluation, plan, compact=workers > 0)
            with BatchLoader(batches, range(len(plan)), workers) as loader:
                for (crops, labels), rows in zip(loader, plan, strict=True):
                    images, want_labels = h5_frames.read(rows)
                    assert torch.equal(evaluation.normalise(crops), todays_evaluation_input(evaluation, images))
                    assert np.array_equal(labels.numpy(), want_labels)
    h5_frames.close()


class _Failing(torch.utils.data.Dataset):
    def __getitem__(self, index):
        if index == 3:
            raise OSError(f"frame store damaged at batch {index}")
        return torch.full((2,), index)


def test_a_loader_processs_error_surfaces_and_the_processes_end():
    with pytest.raises(OSError, match="damaged at batch 3"), BatchLoader(_Failing(), range(8), workers=2) as loader:
        for _ in loader:
            pass
    assert multiprocessing.active_children() == []


def test_extraction_with_loader_processes_and_in_bf16(split_frames, trained, tmp_path):
    """2 worker processes write the same logits as none; bf16 autocast (asked for on the CPU) gives
    logits close to float32's, written as float32, and says so in the file."""
    assert resolve_precision("auto", torch.device("cpu")) == "fp32" and resolve_workers(None, torch.device("cpu")) == 0
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    runs = {}
    for name, options in {"fp32": {}, "workers": {"workers": 2}, "bf16": {"precision": "bf16", "workers": 2}}.items():
        path = extract_logits(split_frames, trained, tmp_path / f"{name}.h5", batch_size=64, **options)
        with h5py.File(path) as handle:
            runs[name] = {n: g["logits"][()] for n, g in handle.items()}
            assert json.loads(handle.attrs["model"])["precision"] == ("bf16" if name == "bf16" else "fp32")
    assert multiprocessing.active_children() == []
    for video, logits in runs["fp32"].items():
        assert np.array_equal(runs["workers"][video], logits)
        low = runs["bf16"][video]
        assert low.dtype == np.float32 and not np.array_equal(low, logits)
        assert np.abs(low - logits).max() < 0.05 * np.abs(logits).max(), np.abs(low - logits).max()


def test_bf16_finetuning_runs_on_the_cpu(split_frames, tmp_path, monkeypatch):
    """bf16 autocast asked for on the CPU, with the GPU's way of keeping the step's loss and
    accuracy on the device (read back at log rows and checkpoints), through a kill and a resume."""
    monkeypatch.setattr("pipeline.features.finetune._deferred_read_back", lambda device: True)
    run = config(epochs=1, frames_per_epoch=48, precision="bf16")  # 3 steps, a checkpoint after step 2

    def kill_after_step_2(step):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(split_frames, run, tmp_path, on_step=kill_after_step_2)
    assert isinstance(torch.load(tmp_path / "checkpoint.pt", weights_only=True)["extra"]["sums"]["loss"], torch.Tensor)
    model_path = finetune(split_frames, run, tmp_path)
    saved = torch.load(model_path, weights_only=True)
    assert saved["precision"] == "bf16" and saved["config"]["precision"] == "bf16"
    assert all(value.dtype == torch.float32 for value in saved["model"].values() if value.is_floating_point())
    row = (tmp_path / "metrics.csv").read_text().splitlines()[1].split(",")
    assert row[:2] == ["1", "3"] and np.isfinite(float(row[2])) and 0 <= float(row[3]) <= 1
