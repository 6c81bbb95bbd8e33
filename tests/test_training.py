"""The recurrent stage: windows, the boundary LSTM's loss, every protocol, exact resume, and online
evaluation against a frame-by-frame loop."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from pipeline.features.logits import LogitsWriter
from pipeline.optim import SGD
from pipeline.trainer import CheckpointError, Trainer, load_checkpoint
from pipeline.training.boundary import (
    BoundaryConfig,
    boundary_distances,
    boundary_folds,
    boundary_predictions,
    fit_boundary_models,
    gaussian_kl,
    predict_boundary,
    train_boundary,
    write_with_boundary,
)
from pipeline.training.classifier import SequenceClassifier, frame_loss
from pipeline.training.config import RecurrentConfig
from pipeline.training.evaluation import predict_video, recompute_population_statistics
from pipeline.training.graphs import GraphedStep
from pipeline.training.inputs import Layout, WindowSampler
from pipeline.training.recurrent import train_recurrent
from pipeline.training.sequences import load_split
from pipeline.training.windows import IGNORE, gather_windows, window_index, window_targets


def fake_logits(path, dataset, classes, seed, videos=8, boundary=False):
    """Logits that are noisy one-hots of a label sequence with a fixed action order, so that context
    helps: every video runs background, then actions 1..C-1 in order, with random lengths."""
    rng = np.random.default_rng(seed)
    names = [f"{dataset}_{k}" for k in range(videos)]
    with LogitsWriter(path, dataset, 1, 15.0, ["background"] + [f"{dataset}_a{c}" for c in range(1, classes)],
                      {"backbone": "fake"}, "background") as writer:
        for k, name in enumerate(names):
            labels = np.concatenate([np.full(rng.integers(6, 14), c) for c in range(classes)])
            logits = 1.5 * np.eye(classes)[labels] + rng.normal(0, 1.0, (len(labels), classes))
            extra = rng.random((len(labels), 2)).astype(np.float32) if boundary else None
            writer.add(name, "test" if k % 4 == 0 else "train", logits.astype(np.float32), labels, extra)
    return path


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("training")
    return [load_split(fake_logits(root / "a.h5", "alpha", 5, 1, boundary=True)),
            load_split(fake_logits(root / "b.h5", "beta", 4, 2, boundary=True))]


def config(**changes):
    values = {"protocol": "joint", "model": "ddlstm", "layers": 2, "hidden": 16, "history": 12, "batch_size": 16,
              "iterations": 60, "lr": 0.1, "momentum": 0.9, "checkpoint_every": 20, "log_every": 10,
              "eval_batch": 64, "seed": 3, "device": "cpu"}
    return RecurrentConfig(**{**values, **changes})


def test_windows_pad_before_the_video_and_shift_targets_for_lookahead():
    features = np.arange(1, 11, dtype=np.float32)[:, None]
    x, mask = gather_windows(features, np.array([1, 9]), 4)
    assert x[:, :, 0].tolist() == [[0, 0, 1, 2], [7, 8, 9, 10]] and mask[0].tolist() == [False, False, True, True]
    labels = np.arange(10) * 10
    assert window_targets(labels, np.array([1]), 4, 0).tolist() == [[IGNORE, IGNORE, 0, 10]]
    # look-ahead 2: the window of frame 9 ends at 11 (past the video); timestep t scores frame t - 2
    assert window_targets(labels, np.array([11]), 4, 2).tolist() == [[IGNORE, IGNORE, 80, 90]]


def test_boundary_distances():
    assert boundary_distances(np.array([3, 3, 3, 1, 1, 2]), 10).tolist() == [3, 2, 1, 2, 1, 1]
    assert boundary_distances(np.array([3, 3, 3, 1, 1, 2]), 2).tolist() == [2, 2, 1, 2, 1, 1]


def test_boundary_loss_is_the_gaussian_kl():
    # KL(N(3, 2^2) || N(1, 4^2)) = ln(4/2) + (2^2 + (3-1)^2) / (2 * 4^2) - 1/2, worked by hand
    expected = math.log(2) + 8 / 32 - 0.5
    value = gaussian_kl(torch.tensor(3.0), 2.0, torch.tensor(1.0), torch.tensor(math.log(4.0)))
    assert value.item() == pytest.approx(expected, abs=1e-6)
    assert gaussian_kl(torch.tensor(3.0), 2.0, torch.tensor(3.0), torch.tensor(math.log(2.0))).item() == pytest.approx(0, abs=1e-7)


def test_boundary_lstm_learns_and_writes_its_output(tmp_path):
    path = fake_logits(tmp_path / "a.h5", "alpha", 5, 1)
    split = load_split(path)
    cfg = BoundaryConfig(history=12, hidden=16, batch_size=16, iterations=150, lr=0.05, checkpoint_every=50,
                         log_every=50, device="cpu")
    model = train_boundary(split, cfg, tmp_path / "work")
    losses = [float(line.split(",")[1]) for line in (tmp_path / "work/train_log.csv").read_text().splitlines()[1:]]
    assert losses[-1] < 0.7 * losses[0], losses
    output = write_with_boundary(path, predict_boundary(model, split, cfg), tmp_path / "a_in.h5")
    inputs = load_split(output)
    assert inputs.has_boundary and all(s.boundary.shape == (len(s.labels), 2) for s in inputs.sequences)
    assert all((s.boundary[:, 1] > 0).all() for s in inputs.sequences)  # standard deviations


def test_window_summed_loss_is_history_times_the_frame_mean_with_its_gradient():
    torch.manual_seed(0)
    batch, history, labels = 4, 10, 6
    logits = torch.randn(batch, history, labels, requires_grad=True)
    targets = torch.randint(0, labels, (batch, history))
    frames = frame_loss(logits, targets, "frames")
    (grad_frames,) = torch.autograd.grad(frames, logits)
    windows = frame_loss(logits, targets, "windows")
    (grad_windows,) = torch.autograd.grad(windows, logits)
    # every frame scored: the window sum averaged over windows is `history` times the frame mean
    torch.testing.assert_close(windows, frames * history)
    torch.testing.assert_close(grad_windows, grad_frames * history)
    # by hand: each window's frames summed, then the mean over windows
    by_hand = torch.stack([torch.nn.functional.cross_entropy(logits[b], targets[b], reduction="sum")
                           for b in range(batch)]).mean()
    torch.testing.assert_close(windows, by_hand)
    # ignored frames count in neither: with padding the ratio is scored frames per window, not history
    targets[0, :4] = IGNORE
    ratio = frame_loss(logits, targets, "windows") / frame_loss(logits, targets, "frames")
    assert ratio.item() == pytest.approx((batch * history - 4) / batch)


def test_adam_and_window_loss_readings_train_and_are_recorded(pair, tmp_path):
    results = train_recurrent(pair, config(model="lstm", optimizer="adam", momentum=0.0, lr=0.01,
                                           loss_reduction="windows", iterations=40), tmp_path)
    losses = [float(line.split(",")[1]) for line in (tmp_path / "train_log.csv").read_text().splitlines()[1:]]
    assert losses[-1] < 0.8 * losses[0], losses
    assert set(results) == {"alpha", "beta"}
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["optimizer"] == "adam" and saved["loss_reduction"] == "windows"
    with pytest.raises(ValueError, match="momentum 0.9 is an SGD setting"):
        train_recurrent(pair, config(optimizer="adam"), tmp_path / "bad")


def test_alpha_learning_rate_scale_is_the_alphas_own_group(pair, tmp_path):
    # plain SGD without momentum from the same initial state: the alphas move by scale times the step
    moves = {}
    for scale in (1.0, 0.1):
        train_recurrent(pair, config(iterations=1, momentum=0.0, alpha_lr_scale=scale, log_every=1), tmp_path / str(scale))
        rows = (tmp_path / str(scale) / "alphas.csv").read_text().splitlines()[1:]
        moves[scale] = np.array([float(v) for row in rows for v in row.split(",")[2:]]) - 0.75
    assert np.abs(moves[1.0]).max() > 0
    np.testing.assert_allclose(moves[0.1], 0.1 * moves[1.0], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("model", ["lstm", "bnlstm", "ddlstm"])
def test_joint_training_lowers_the_loss(pair, tmp_path, model):
    # lr 0.5: with gamma fixed at 0.1 the BN variants' gates move slowly; at lr 0.1 they fall by
    # only 7% in 80 steps (LSTM 56%), at 0.5 by 36% (LSTM 85%).
    results = train_recurrent(pair, config(model=model, iterations=80, lr=0.5), tmp_path)
    losses = [float(line.split(",")[1]) for line in (tmp_path / "train_log.csv").read_text().splitlines()[1:]]
    assert losses[-1] < 0.75 * losses[0], losses
    assert set(results) == {"alpha", "beta"}
    metrics = (tmp_path / "metrics.csv").read_text().splitlines()
    assert metrics[0] == ("iteration,dataset,split,videos,frames,accuracy,edit,f1@10,f1@25,f1@50,"
                          "edit_mstcn,f1@10_mstcn,f1@25_mstcn,f1@50_mstcn")
    assert len(metrics) == 3
    if model == "ddlstm":
        alphas = (tmp_path / "alphas.csv").read_text().splitlines()
        assert alphas[0] == "iteration,layer,alpha_1,alpha_2" and len(alphas) == 1 + 8 * 2
        values = np.array([[float(v) for v in line.split(",")[2:]] for line in alphas[1:]])
        assert ((values >= 0.5) & (values <= 1.0)).all()


def test_pretrain_finetune_evaluates_both_datasets(pair, tmp_path):
    results = train_recurrent(pair, config(protocol="pretrain_finetune", model="lstm", iterations=30), tmp_path)
    assert set(results) == {"alpha", "beta"}
    assert len((tmp_path / "train_log.csv").read_text().splitlines()) == 1 + 6  # two phases of 30
    predictions = np.load(tmp_path / "predictions.npz")
    assert {key.split("/")[0] for key in predictions.files} == {"alpha", "beta"}
    videos = (tmp_path / "videos.csv").read_text().splitlines()
    assert len(videos) == 1 + 2 + 2  # header, the test videos of both datasets


def test_single_dataset_protocol(pair, tmp_path):
    results = train_recurrent(pair[:1], config(protocol="single", iterations=20), tmp_path)
    assert set(results) == {"alpha"}
    with pytest.raises(ValueError, match="protocol 'joint' takes 2 or more dataset"):
        train_recurrent(pair[:1], config(), tmp_path / "x")


def test_killed_run_resumes_to_the_same_metrics(pair, tmp_path):
    whole = train_recurrent(pair, config(iterations=50), tmp_path / "whole")

    def kill(iteration):
        if iteration == 27:  # last checkpoint at 20: 21..27 are lost and redone
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_recurrent(pair, config(iterations=50), tmp_path / "killed", on_step=kill)
    assert not (tmp_path / "killed/metrics.csv").exists()
    resumed = train_recurrent(pair, config(iterations=50), tmp_path / "killed")
    assert resumed == whole
    for name in ("metrics.csv", "alphas.csv", "videos.csv"):
        assert (tmp_path / "whole" / name).read_text() == (tmp_path / "killed" / name).read_text(), name

    def losses(path):
        return [line.split(",")[:2] for line in path.read_text().splitlines()]

    assert losses(tmp_path / "whole/train_log.csv") == losses(tmp_path / "killed/train_log.csv")
    with pytest.raises(ValueError, match=r"another configuration \(differs in \['lr'\]\)"):
        train_recurrent(pair, config(iterations=50, lr=0.2), tmp_path / "killed")


class _Planted:
    """Unpickling this runs code: what a file planted in a shared results folder could do."""

    def __reduce__(self):
        return (print, ("the planted checkpoint ran code",))


@pytest.mark.parametrize("damage", [
    lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),  # truncated
    lambda path: path.write_bytes(b""),  # empty
    lambda path: path.write_bytes(b"\x00not a checkpoint" * 100),  # overwritten with other bytes
])
def test_a_damaged_checkpoint_resumes_from_the_one_before_it(pair, tmp_path, caplog, damage):
    whole = train_recurrent(pair, config(iterations=50), tmp_path / "whole")

    def kill(iteration):
        if iteration == 47:  # checkpoints at 20 and 40: checkpoint.prev.pt is 20's, checkpoint.pt 40's
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_recurrent(pair, config(iterations=50), tmp_path / "killed", on_step=kill)
    damage(tmp_path / "killed" / "checkpoint.pt")
    resumed = train_recurrent(pair, config(iterations=50), tmp_path / "killed")
    assert resumed == whole  # from iteration 20, to the same end
    assert any("checkpoint.pt: the checkpoint is" in r.getMessage() and "resuming from the checkpoint before it"
               in r.getMessage() and "iteration 20" in r.getMessage() for r in caplog.records)


def test_a_damaged_checkpoint_without_one_before_it_says_what_to_delete(pair, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "checkpoint.pt").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: the checkpoint is damaged \(.*\); delete .*checkpoint\.pt "
                                              r"to start this run afresh"):
        train_recurrent(pair, config(iterations=10), folder)


def test_a_planted_pickle_is_refused_and_runs_nothing(pair, tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    torch.save({"fingerprint": _Planted(), "model": {}, "optimizer": {}, "iteration": 0}, folder / "checkpoint.pt")
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: the checkpoint holds Python objects beyond tensors"):
        train_recurrent(pair, config(iterations=10), folder)
    assert "ran code" not in capsys.readouterr().out
    with pytest.raises(CheckpointError, match="holds Python objects"):
        load_checkpoint(folder / "checkpoint.pt")


@pytest.mark.parametrize("lookahead", [False, True])
@pytest.mark.parametrize("model", ["lstm", "ddlstm"])
def test_batched_evaluation_equals_a_frame_by_frame_loop(pair, lookahead, model):
    cfg = config(model=model, lookahead=lookahead, eval_batch=7)
    layout = Layout(pair)
    torch.manual_seed(0)
    net = SequenceClassifier(model, layout.input_size, layout.num_labels, cfg, 2)
    with torch.no_grad():  # non-trivial population statistics
        net.train()
        x = torch.randn(16, cfg.history, layout.input_size)
        for _ in range(3):
            net(x, domain_sizes=[9, 7])
    net.eval()
    sequence = pair[1].subset("test")[0]
    features = layout.features(1, sequence)
    predicted, scores = predict_video(net, features, layout.block(1), 1, cfg, "cpu")
    shift = cfg.history // 2 if lookahead else 0
    for frame in range(len(features)):
        window, mask = gather_windows(features, np.array([frame + shift]), cfg.history)
        with torch.no_grad():
            out = net(torch.from_numpy(window), domain=1, mask=torch.from_numpy(mask))[0, -1]
        assert np.allclose(scores[frame], out.numpy(), atol=1e-5)
        best = int(out.argmax()) - layout.block(1).start  # eval_labels "all": another block's label is -1
        assert predicted[frame] == (best if 0 <= best < pair[1].num_classes else -1)


def test_command_lines(tmp_path):
    from pipeline.__main__ import main

    for name, classes, seed in (("alpha", 5, 1), ("beta", 4, 2)):
        fake_logits(tmp_path / f"{name}.h5", name, classes, seed)
        assert main(["boundary", "--logits", str(tmp_path / f"{name}.h5"), "--output", str(tmp_path / f"{name}_in.h5"),
                     "--work-dir", str(tmp_path / f"boundary_{name}"), "--history", "12", "--hidden", "8",
                     "--iterations", "20", "--device", "cpu"]) == 0
    assert main(["train", "--inputs", str(tmp_path / "alpha_in.h5"), str(tmp_path / "beta_in.h5"),
                 "--output-dir", str(tmp_path / "run"), "--protocol", "joint", "--model", "ddlstm", "--layers", "1",
                 "--hidden", "8", "--history", "12", "--batch-size", "8", "--iterations", "10", "--lookahead",
                 "--device", "cpu"]) == 0
    assert '"lookahead": true' in (tmp_path / "run/config.json").read_text()
    assert (tmp_path / "run/metrics.csv").read_text().count("\n") == 3


def test_a_changed_configuration_can_restart_afresh(pair, tmp_path):
    train_recurrent(pair, config(iterations=20), tmp_path)
    fresh = train_recurrent(pair, config(iterations=20, lr=0.2), tmp_path / "fresh")
    restarted = train_recurrent(pair, config(iterations=20, lr=0.2), tmp_path, restart_on_change=True)
    assert restarted == fresh and (tmp_path / "checkpoint.stale.pt").exists()


def test_eval_labels_all_lets_pretrain_finetune_forget_the_first_dataset(pair, tmp_path):
    # pre-trained on alpha, fine-tuned on beta: over all labels alpha's frames go to beta's classes
    scores = {labels: train_recurrent(pair, config(protocol="pretrain_finetune", model="lstm", iterations=60,
                                                   eval_labels=labels), tmp_path / labels)
              for labels in ("all", "own")}
    assert scores["all"]["alpha"]["accuracy"] < 10
    assert scores["own"]["alpha"]["accuracy"] > scores["all"]["alpha"]["accuracy"] + 20
    assert scores["all"]["beta"]["accuracy"] > 40  # the dataset trained last is fine
    predictions = np.load(tmp_path / "all/predictions.npz")
    assert (np.concatenate([predictions[k] for k in predictions.files if k.startswith("alpha/")]) == -1).mean() > 0.9


def test_input_layouts(pair):
    sequence = pair[1].subset("test")[0]
    blocks, shared = Layout(pair, "blocks"), Layout(pair, "shared")
    assert (blocks.input_size, shared.input_size) == (5 + 4 + 2, 5 + 2)
    used = np.flatnonzero(np.abs(blocks.features(1, sequence)).sum(0))
    assert used.tolist() == [5, 6, 7, 8, 9, 10]  # beta's own 4 columns after alpha's 5, then the boundary
    for index, split in enumerate(pair):  # shared: both datasets in the leading columns
        features = shared.features(index, split.subset("test")[0])
        assert np.flatnonzero(np.abs(features).sum(0)).tolist() == [*range(split.num_classes), 5, 6]
    np.testing.assert_array_equal(shared.features(1, sequence)[:, :4], blocks.features(1, sequence)[:, 5:9])
    with pytest.raises(ValueError, match="input_layout must be one of"):
        Layout(pair, "interleaved")


def test_cross_fitted_boundary_predictions_come_from_a_model_that_did_not_see_the_video(tmp_path):
    split = load_split(fake_logits(tmp_path / "a.h5", "alpha", 5, 1, videos=12))
    cfg = BoundaryConfig(history=12, hidden=8, batch_size=8, iterations=10, checkpoint_every=10, log_every=10,
                         folds=3, device="cpu")
    models, assignment = fit_boundary_models(split, cfg, tmp_path / "work")
    assert set(models) == {"all", "fold1", "fold2", "fold3"}
    for sequence in split.sequences:
        chosen = assignment[sequence.name]
        if sequence.subset == "test":
            assert chosen == "all"
            continue
        state = torch.load(tmp_path / "work" / chosen / "checkpoint.pt", weights_only=True)
        assert sequence.name in state["fingerprint"]["left_out"]  # trained without it
    folds = [[name for name, model in assignment.items() if model == f"fold{k}"] for k in (1, 2, 3)]
    assert sorted(name for fold in folds for name in fold) == sorted(s.name for s in split.subset("train"))
    predictions = boundary_predictions(split, cfg, tmp_path / "work")  # resumes: the same models
    video = folds[1][0]
    np.testing.assert_array_equal(predictions[video], predict_boundary(models["fold2"], split, cfg, [video])[video])
    assert not np.array_equal(predictions[video], predict_boundary(models["all"], split, cfg, [video])[video])
    single, where = fit_boundary_models(split, BoundaryConfig(**{**cfg.__dict__, "folds": 1}), tmp_path / "one")
    assert set(single) == {"all"} and set(where.values()) == {"all"}


def test_boundary_folds_go_by_participant(tmp_path):
    split = load_split(fake_logits(tmp_path / "a.h5", "alpha", 5, 1, videos=12))
    for sequence, person in zip(split.sequences, "AABBCCDDEEFF"):
        sequence.participant = person
    folds = boundary_folds(split, 2)
    people = [{s.participant for s in split.sequences if s.name in fold} for fold in folds]
    assert not people[0] & people[1] and sum(map(len, folds)) == len(split.subset("train"))


def test_short_windows_start_at_timestep_zero():
    index, mask = window_index(np.array([1, 9]), 4, 20, align="start")
    assert index.tolist() == [[0, 1, 2, 3], [6, 7, 8, 9]]
    assert mask.tolist() == [[True, True, False, False], [True, True, True, True]]
    features = np.arange(1, 21, dtype=np.float32)[:, None]
    x, _ = gather_windows(features, np.array([1]), 4, align="start")
    assert x[0, :, 0].tolist() == [1, 2, 0, 0]
    # the targets follow the frames: timestep t scores the frame at t - lookahead; timestep 3 is padding
    # that carries the state after frame 2 on, as past a video's end, and scores frame 2
    assert window_targets(np.arange(20) * 10, np.array([2]), 4, 1, align="start").tolist() == [[IGNORE, 0, 10, 20]]


@pytest.mark.parametrize("model, same", [("lstm", True), ("bnlstm", False)])
def test_short_window_alignment_matters_only_with_per_timestep_statistics(pair, model, same):
    cfg = config(model=model, eval_batch=64)
    layout = Layout(pair)
    torch.manual_seed(0)
    net = SequenceClassifier(model, layout.input_size, layout.num_labels, cfg, 2)
    with torch.no_grad():
        net.train()
        for _ in range(3):
            net(torch.randn(16, cfg.history, layout.input_size) + torch.arange(cfg.history)[:, None] * 0.3,
                domain_sizes=[8, 8])
    net.eval()
    features = layout.features(0, pair[0].subset("test")[0])
    _, end = predict_video(net, features, layout.block(0), 0, cfg, "cpu")
    _, start = predict_video(net, features, layout.block(0), 0, replace(cfg, short_windows="start"), "cpu")
    assert np.allclose(end, start, atol=1e-5) == same
    np.testing.assert_allclose(end[cfg.history:], start[cfg.history:], atol=1e-5)  # full windows: the same


def test_boundary_folds_shrink_to_the_videos_there_are(tmp_path):
    split = load_split(fake_logits(tmp_path / "a.h5", "alpha", 5, 1, videos=4))  # 3 training videos
    assert len(boundary_folds(split, 4)) == 3 and sorted(n for fold in boundary_folds(split, 4) for n in fold) == \
        sorted(s.name for s in split.subset("train"))
    one = load_split(fake_logits(tmp_path / "b.h5", "beta", 4, 2, videos=2))  # 1 training video
    assert boundary_folds(one, 4) == []


def test_tensor_losses_are_read_back_per_log_row_and_a_non_finite_one_is_named(tmp_path):
    model = torch.nn.Linear(2, 1)
    losses = [1.0, 2.0, 3.0, 4.0, float("nan"), 6.0]
    trainer = Trainer(model, SGD(model.parameters(), lr=0.1), tmp_path, {}, checkpoint_every=100, description="t")
    trainer.run(4, lambda i: torch.tensor(losses[i]), log_every=2)
    assert [row["loss"] for row in trainer.logs["train_log"]] == [1.5, 3.5]
    with pytest.raises(FloatingPointError, match="loss is nan at iteration 5"):
        trainer.run(6, lambda i: torch.tensor(losses[i]), log_every=2)


def test_the_captured_step_is_the_step_off_cuda(pair, tmp_path):
    calls = []
    step = GraphedStep(lambda *args: calls.append(args) or torch.tensor(1.0), enabled=True)
    assert float(step(torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.bool), torch.zeros(2, 3), [1, 1])) == 1.0
    assert len(calls) == 1  # on the CPU: called directly, nothing captured
    graphs = train_recurrent(pair, config(iterations=20, cuda_graphs=True), tmp_path / "graphs")
    eager = train_recurrent(pair, config(iterations=20, cuda_graphs=False), tmp_path / "eager")
    assert graphs == eager


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("model", ["lstm", "ddlstm"])
def test_captured_cuda_graph_steps_equal_eager_ones(pair, tmp_path, model):
    # 12 steps: 3 eager warm-up steps, the capture, 8 replays; the same kernels in the same order
    runs = {graphs: train_recurrent(pair, config(model=model, iterations=12, device="cuda", cuda_graphs=graphs),
                                    tmp_path / str(graphs)) for graphs in (True, False)}
    weights = {graphs: torch.load(tmp_path / str(graphs) / "checkpoint.pt", weights_only=True)["model"]
               for graphs in runs}
    for name, value in weights[True].items():
        torch.testing.assert_close(value, weights[False][name], rtol=1e-4, atol=1e-5, msg=name)
    for dataset in runs[True]:
        assert abs(runs[True][dataset]["accuracy"] - runs[False][dataset]["accuracy"]) < 1.0


def test_population_statistics_are_the_average_over_batches_of_the_current_weights(pair):
    cfg = config(model="ddlstm", batch_size=8)
    layout = Layout(pair)
    sampler = WindowSampler(layout, cfg)
    torch.manual_seed(0)
    net = SequenceClassifier("ddlstm", layout.input_size, layout.num_labels, cfg, 2)
    singles = []
    for first in (100, 101):  # one batch each: the statistics of that batch alone
        copy_ = SequenceClassifier("ddlstm", layout.input_size, layout.num_labels, cfg, 2)
        copy_.load_state_dict(net.state_dict())
        recompute_population_statistics(copy_, sampler, 1, first, "cpu")
        singles.append(copy_.recurrent.layers[0].norm_x.running_mean.clone())
    recompute_population_statistics(net, sampler, 2, 100, "cpu")
    torch.testing.assert_close(net.recurrent.layers[0].norm_x.running_mean, (singles[0] + singles[1]) / 2)
    assert net.recurrent.layers[0].norm_x.momentum == 0.1  # restored
