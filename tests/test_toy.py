"""Joint training on the two-domain toy problem lowers the loss for all three model types."""

import pytest

from pipeline.device import select_device
from pipeline.toy import ToyConfig, train_and_evaluate


@pytest.mark.parametrize("model", ["lstm", "bnlstm", "ddlstm"])
def test_joint_training_lowers_the_loss(model):
    cfg = ToyConfig(iterations=40, batch=16, window=16, hidden=16, layers=2, lr=0.5)
    accuracy, losses = train_and_evaluate(model, cfg, select_device("cpu"), log=None)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.9 * first, (first, last)
    assert all(0.0 <= a <= 1.0 for a in accuracy)


def test_device_selection():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type in ("cpu", "cuda")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            select_device("cuda")
