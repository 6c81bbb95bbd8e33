"""Progress bars for long work: live on a terminal, a line every 10 s in a log file."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress_bar(total: int, description: str):
    live = sys.stderr.isatty()
    return tqdm(total=total, desc=description, file=sys.stderr, mininterval=0.5 if live else 10.0,
                ascii=not live, dynamic_ncols=live)
