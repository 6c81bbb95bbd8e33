"""ddlstm: cross-dataset online action recognition with dual-domain LSTMs (Perrett & Damen, CVPR 2019).

Subpackages: `pipeline.models` (LSTM / BNLSTM / DDLSTM and DDBN as PyTorch layers).
"""

__version__ = "0.1.0"
