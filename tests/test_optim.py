"""Our optimisers take exactly torch.optim's steps: SGD (momentum, weight decay, a changed lr, resume)
and Adam (step for step, per-group learning rates, resume), and their state loads with weights_only."""

import io

import pytest
import torch

from pipeline.optim import SGD, Adam, make_optimizer


def _twins():
    torch.manual_seed(0)
    ours_model, theirs_model = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    theirs_model.load_state_dict(ours_model.state_dict())
    return ours_model, theirs_model


def _reloaded(optimizer, make):
    """The optimizer's state through a file, loaded as a resumed run would (weights_only)."""
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    buffer.seek(0)
    fresh = make()
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    return fresh


def test_sgd_matches_torch_sgd():
    ours_model, theirs_model = _twins()
    ours = SGD(ours_model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    theirs = torch.optim.SGD(theirs_model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    x = torch.randn(8, 4)
    for step in range(6):
        if step == 3:
            ours.param_groups[0]["lr"] = theirs.param_groups[0]["lr"] = 0.05
            ours = _reloaded(ours, lambda: SGD(ours_model.parameters(), lr=1.0, momentum=0.9, weight_decay=0.01))
        for model, optimizer in ((ours_model, ours), (theirs_model, theirs)):
            optimizer.zero_grad()
            model(x).pow(2).sum().backward()
            optimizer.step()
    for a, b in zip(ours_model.parameters(), theirs_model.parameters()):
        assert torch.allclose(a, b, atol=1e-7)


def test_adam_matches_torch_adam_step_for_step():
    ours_model, theirs_model = _twins()
    groups = lambda model: [{"params": [model.weight]}, {"params": [model.bias], "lr": 0.002}]
    ours = Adam(groups(ours_model), lr=0.01)
    theirs = torch.optim.Adam(groups(theirs_model), lr=0.01)
    x = torch.randn(8, 4)
    for step in range(12):
        if step == 5:  # a resumed run continues with the same moments and step count
            ours = _reloaded(ours, lambda: Adam(groups(ours_model), lr=0.5))
        for model, optimizer in ((ours_model, ours), (theirs_model, theirs)):
            optimizer.zero_grad()
            (model(x) - 1).pow(2).sum().backward()
            optimizer.step()
        for a, b in zip(ours_model.parameters(), theirs_model.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert ours.param_groups[1]["lr"] == 0.002  # the group's own rate survived the reload


def test_make_optimizer_refuses_momentum_with_adam_and_unknown_names():
    params = [torch.nn.Parameter(torch.zeros(2))]
    assert isinstance(make_optimizer("adam", params, lr=0.01), Adam)
    with pytest.raises(ValueError, match="momentum 0.9 is an SGD setting"):
        make_optimizer("adam", params, lr=0.01, momentum=0.9)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        make_optimizer("rmsprop", params, lr=0.01)
