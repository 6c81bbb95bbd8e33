"""Recurrent models of the DDLSTM paper as a PyTorch library.

    from pipeline.models import DDBN, DDLSTM, BNLSTM, LSTM, create_model

See `recurrent.py` for the models, `layers.py` for one layer (the cell, and which kernel runs a
sequence), `ddbn.py` for the normalisation layers, `contribution.py` for the contribution
functions and their d-domain generalisation, `native/` for the C++ per-timestep loop on the CPU,
`triton_kernel/` for the Triton kernels (CUDA, `implementation="triton"`), `fused.py` (with
`stepnorm.py` and `workspace.py`) for the tensor kernel that runs on any device.
"""

from .contribution import alpha_index, contribution_weights, num_alphas
from .ddbn import BN, DDBN
from .layers import RecurrentLayer
from .recurrent import (
    BNLSTM,
    DDLSTM,
    LSTM,
    RecurrentStack,
    StreamState,
    create_model,
    list_models,
    project_alphas_after_step,
    register_model,
)

__all__ = [
    "BN",
    "BNLSTM",
    "DDBN",
    "DDLSTM",
    "LSTM",
    "RecurrentLayer",
    "RecurrentStack",
    "StreamState",
    "alpha_index",
    "contribution_weights",
    "create_model",
    "list_models",
    "num_alphas",
    "project_alphas_after_step",
    "register_model",
]
