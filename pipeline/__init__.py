"""ddlstm: cross-dataset online action recognition with dual-domain LSTMs (Perrett & Damen, CVPR 2019).

Subpackages: `pipeline.models` (LSTM / BNLSTM / DDLSTM and DDBN as PyTorch layers),
`pipeline.data` (dataset readers, splits, decoding, precomputed features, synthetic datasets),
`pipeline.features` (the frame classifiers: BN-Inception from videos, linear on features; logits),
`pipeline.training` (boundary LSTM, recurrent protocols, online evaluation),
`pipeline.evaluation` (segmentation metrics), `pipeline.reporting` (tables and figures).
`ddlstm <step>` (the same as `python -m pipeline <step>`) runs one step; docs/method.md is the method.
"""



def _version() -> str:
    """pyproject.toml's version: as installed, or read from the checkout when the package is not installed."""
    from importlib import metadata

    try:
        return metadata.version("ddlstm")
    except metadata.PackageNotFoundError:
        import tomllib
        from pathlib import Path

        return tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["version"]


__version__ = _version()
