"""The paper's outputs from the runs: Tables 1 and 2 and the segmentation table (`tables.py`),
Figs. 5, 6 and 7 (`figures.py`), and the paper's own numbers for comparison (`paper.py`)."""
