"""The adaptive batch makeup (`domain_share: adaptive`, pipeline/training/makeup.py): shares bounded away
from 0 and 1 for pairs and groups, moving towards the dataset whose loss has come down least, logged at
every step, and a killed run resumed from its checkpoint ends byte-identical to an uninterrupted one."""

import csv
import json

import numpy as np
import pytest
import torch

from pipeline.training.cli import train_main
from pipeline.training.config import RecurrentConfig
from pipeline.training.inputs import batch_sizes
from pipeline.training.makeup import AdaptiveShare, apportion, domain_losses
from pipeline.training.recurrent import train_recurrent
from pipeline.training.sequences import load_split
from pipeline.training.windows import IGNORE
from tests.test_training import fake_logits


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("makeup")
    return [load_split(fake_logits(root / f"{name}.h5", name, classes, seed, boundary=True))
            for name, classes, seed in (("alpha", 5, 1), ("beta", 4, 2), ("gamma", 3, 3))]


def config(**changes):
    values = {"protocol": "joint", "model": "ddlstm", "layers": 2, "hidden": 16, "history": 12, "batch_size": 16,
              "iterations": 50, "lr": 0.5, "momentum": 0.9, "checkpoint_every": 20, "log_every": 10,
              "eval_batch": 64, "seed": 3, "device": "cpu", "domain_share": "adaptive", "share_min": 0.125}
    return RecurrentConfig(**{**values, **changes})


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("datasets_, share_min", [(2, 0.1), (2, 0.25), (3, 0.1), (4, 0.05)])
def test_shares_stay_within_their_bounds_and_sum_to_one(datasets_, share_min):
    makeup = AdaptiveShare(datasets_, 32, share_min, ema=0.5)
    assert makeup.shares == [1 / datasets_] * datasets_ and sum(makeup.sizes()) == 32
    low, high = share_min, 1 - (datasets_ - 1) * share_min
    rng = np.random.default_rng(0)
    extremes = []
    for step in range(300):
        # dataset 0's loss falls to nothing, the others' wander: the share goes as far as the bounds allow
        losses = [[1000.0 * 0.9**step if k == 0 else 1000.0 * rng.uniform(0.5, 2.0), 1000.0] for k in range(datasets_)]
        makeup.update(losses)
        assert all(low - 1e-12 <= s <= high + 1e-12 for s in makeup.shares), makeup.shares
        assert sum(makeup.shares) == pytest.approx(1.0)
        sizes = makeup.sizes()
        assert sum(sizes) == 32 and min(sizes) >= 1
        extremes.append(makeup.shares[0])
    assert extremes[-1] == pytest.approx(low, abs=1e-6)  # the dataset that has learned most: the least share


def test_the_dataset_that_came_down_least_gets_more_of_the_batch():
    makeup = AdaptiveShare(2, 20, 0.1, ema=0.0)  # no smoothing: the rule itself
    makeup.update([[4.0, 2.0], [6.0, 2.0]])  # first losses 2 and 3: both at their start
    assert makeup.shares == [0.5, 0.5]
    makeup.update([[2.0, 2.0], [4.5, 3.0]])  # dataset 1 at 1/2 of its first loss, dataset 2 at 1/2: still even
    assert makeup.shares == pytest.approx([0.5, 0.5])
    makeup.update([[1.0, 2.0], [4.5, 3.0]])  # 1/4 against 1/2: r = (1/4, 1/2), s_2 = 0.1 + 0.8 * 2/3
    assert makeup.shares == pytest.approx([0.1 + 0.8 / 3, 0.1 + 1.6 / 3])
    assert makeup.sizes() == [7, 13]  # 7.33 and 12.67 by largest remainder
    makeup.update([[0.0, 0.0], [3.0, 3.0]])  # no scored frame of dataset 1: its average stays, 1/4 against 1/3
    assert makeup.shares == pytest.approx([0.1 + 0.8 * 3 / 7, 0.1 + 0.8 * 4 / 7])


def test_apportion_and_the_losses_of_each_block():
    assert apportion([0.5, 0.5], 17) == [9, 8] and apportion([0.1, 0.3, 0.6], 10) == [1, 3, 6]
    assert apportion([1 / 3] * 3, 32) == [11, 11, 10]
    logits = torch.randn(5, 4, 6)
    targets = torch.randint(0, 6, (5, 4))
    targets[3, :2] = IGNORE
    found = domain_losses(logits, targets, [2, 3])
    expected_1 = torch.nn.functional.cross_entropy(logits[:2].reshape(-1, 6), targets[:2].reshape(-1), reduction="sum")
    torch.testing.assert_close(found[0], torch.stack([expected_1, torch.tensor(8.0)]))
    assert float(found[1, 1]) == 10.0  # 12 frames, 2 ignored


def test_an_adaptive_run_logs_every_steps_makeup_within_the_bounds(datasets, tmp_path):
    results = train_recurrent(datasets[:2], config(), tmp_path / "run")
    assert set(results) == {"alpha", "beta"}
    rows = read_rows(tmp_path / "run/shares.csv")
    assert [int(row["iteration"]) for row in rows] == list(range(1, 51))  # every step
    assert list(rows[0]) == ["iteration", "windows_1", "windows_2", "share_1", "share_2", "loss_1", "loss_2"]
    for row in rows:
        assert int(row["windows_1"]) + int(row["windows_2"]) == 16 and min(int(row["windows_1"]), int(row["windows_2"])) >= 2
        assert 0.125 <= float(row["share_1"]) <= 0.875 and float(row["share_1"]) + float(row["share_2"]) == pytest.approx(1)
    assert rows[0]["share_1"] == "0.5" and len({row["share_1"] for row in rows}) > 10  # it adapts
    assert json.loads((tmp_path / "run/config.json").read_text())["domain_share"] == "adaptive"
    fingerprint = torch.load(tmp_path / "run/checkpoint.pt", weights_only=True)["fingerprint"]
    assert fingerprint["share_min"] == 0.125 and fingerprint["share_ema"] == 0.9
    # a fixed share's run is what it was before the adaptive makeup: no shares.csv, no new fingerprint keys
    train_recurrent(datasets[:2], config(domain_share=0.5, iterations=2), tmp_path / "fixed")
    assert not (tmp_path / "fixed/shares.csv").exists()
    assert not {"share_min", "share_ema"} & set(torch.load(tmp_path / "fixed/checkpoint.pt", weights_only=True)["fingerprint"])


def test_a_group_of_three_adapts_one_share_per_dataset(datasets, tmp_path):
    train_recurrent(datasets, config(iterations=20, batch_size=18, share_min=0.1), tmp_path / "group")
    rows = read_rows(tmp_path / "group/shares.csv")
    assert list(rows[0])[1:4] == ["windows_1", "windows_2", "windows_3"]
    for row in rows:
        shares = [float(row[f"share_{k}"]) for k in (1, 2, 3)]
        assert sum(int(row[f"windows_{k}"]) for k in (1, 2, 3)) == 18 and sum(shares) == pytest.approx(1)
        assert all(0.1 <= s <= 0.8 for s in shares)


def test_a_killed_adaptive_run_resumes_byte_identical(datasets, tmp_path):
    whole = train_recurrent(datasets[:2], config(), tmp_path / "whole")

    def kill(iteration):
        if iteration == 27:  # last checkpoint at 20: the shares and averages of steps 21..27 are lost and redone
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_recurrent(datasets[:2], config(), tmp_path / "killed", on_step=kill)
    assert len(read_rows(tmp_path / "killed/shares.csv")) == 20
    resumed = train_recurrent(datasets[:2], config(), tmp_path / "killed")
    assert resumed == whole
    for name in ("shares.csv", "metrics.csv", "alphas.csv", "videos.csv", "config.json"):
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "killed" / name).read_bytes(), name
    states = [torch.load(tmp_path / run / "checkpoint.pt", weights_only=True) for run in ("whole", "killed")]
    assert states[0]["extra"]["makeup"] == states[1]["extra"]["makeup"]
    for key, value in states[0]["model"].items():
        assert torch.equal(value, states[1]["model"][key]), key
    predictions = [np.load(tmp_path / run / "predictions.npz") for run in ("whole", "killed")]
    assert predictions[0].files == predictions[1].files
    assert all(np.array_equal(predictions[0][k], predictions[1][k]) for k in predictions[0].files)

    def losses(path):
        return [line.split(",")[:2] for line in path.read_text().splitlines()]

    assert losses(tmp_path / "whole/train_log.csv") == losses(tmp_path / "killed/train_log.csv")
    with pytest.raises(ValueError, match=r"another configuration \(differs in \['share_ema'\]\)"):
        train_recurrent(datasets[:2], config(share_ema=0.5), tmp_path / "killed")


def test_the_options_are_checked_with_one_line_each(datasets, tmp_path):
    for changes, message in (({"share_min": 0.4}, r"share_min must lie in \(0, 1/3\)"),
                             ({"share_min": 0.05}, r"less than one window: raise share_min to at least 0.0625"),
                             ({"share_ema": 1.0}, r"share_ema must lie in \[0, 1\)"),
                             ({"domain_share": "often"}, r"domain_share must lie in \(0, 1\) or be 'adaptive'")):
        with pytest.raises(ValueError, match=message):
            config(**{"share_min": 0.1, **changes}).check(3)
    with pytest.raises(ValueError, match="the batch makeup comes from the run's AdaptiveShare"):
        batch_sizes(config(), 0, 2)
    config(protocol="pretrain_finetune").check(2)  # an adaptive share means nothing there: accepted, unused
    with pytest.raises(SystemExit):
        train_main(["--inputs", "a.h5", "b.h5", "--output-dir", str(tmp_path), "--domain-share", "often"])
