"""The command line's reference page (docs/cli.md), generated from the argparse parsers themselves.

    python -m pipeline.cli_reference > docs/cli.md

Every step's `--help` is captured as it prints, so the page cannot drift from the options; a test
regenerates it and compares.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os

from .__main__ import STEPS, usage

HEADER = """\
# The command line

`ddlstm <step> [options]` runs one stage of the pipeline; `python -m pipeline <step>` is the same
command (the workflow's rules call it that way, with the python of their environment). A failure is one
line, `error: <file>: <what is wrong>`, exit status 1 (2 for bad options); `--debug` (or
`DDLSTM_DEBUG=1`) adds the traceback. `ddlstm --version` prints the version. This page is generated
from the parsers (`python -m pipeline.cli_reference > docs/cli.md`).

```text
{usage}
```
"""


def help_text(step: str) -> str:
    """What `ddlstm <step> --help` prints, at a fixed width."""
    module, _, function = STEPS[step][0].partition(":")
    main = getattr(importlib.import_module(module), function or "main")
    return _captured(main)


def _captured(main) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.suppress(SystemExit):
        main(["--help"])
    return buffer.getvalue().rstrip()


def page() -> str:
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: one width for every machine
    try:
        parts = [HEADER.format(usage=usage())]
        for step, (_, summary) in STEPS.items():
            parts.append(f"## `ddlstm {step}`\n\n{summary[0].upper()}{summary[1:]}.\n\n```text\n{help_text(step)}\n```\n")
        from .toy import main as toy_main

        parts.append("## `ddlstm-toy`\n\nThe two-domain toy problem of the model library (not the workflow's demo)."
                     f"\n\n```text\n{_captured(toy_main)}\n```\n")
    finally:
        if previous is None:
            os.environ.pop("COLUMNS")
        else:
            os.environ["COLUMNS"] = previous
    return "\n".join(parts)


if __name__ == "__main__":
    print(page(), end="")
