"""Our SGD takes exactly torch.optim.SGD's steps (momentum, weight decay, a changed lr, resume)."""

import torch

from pipeline.sgd import SGD


def test_matches_torch_sgd():
    torch.manual_seed(0)
    ours_model, theirs_model = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    theirs_model.load_state_dict(ours_model.state_dict())
    ours = SGD(ours_model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    theirs = torch.optim.SGD(theirs_model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    x = torch.randn(8, 4)
    for step in range(6):
        if step == 3:
            ours.param_groups[0]["lr"] = theirs.param_groups[0]["lr"] = 0.05
            state = ours.state_dict()
            ours = SGD(ours_model.parameters(), lr=1.0, momentum=0.9, weight_decay=0.01)
            ours.load_state_dict(state)  # a resumed run
        for model, optimizer in ((ours_model, ours), (theirs_model, theirs)):
            optimizer.zero_grad()
            model(x).pow(2).sum().backward()
            optimizer.step()
    for a, b in zip(ours_model.parameters(), theirs_model.parameters()):
        assert torch.allclose(a, b, atol=1e-7)
