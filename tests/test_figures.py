"""The figures name what they show: Fig. 6's legend names the classes in its strips (and the other
dataset's labels, which a joint or fine-tuned model may predict), each with the colour it is drawn in."""

import numpy as np

from pipeline.reporting import figures


def test_figure6_legend_names_each_class_shown_in_its_colour(tmp_path, monkeypatch):
    captured = {}

    def keep(figure, output):
        captured["figure"] = figure
        return output

    monkeypatch.setattr(figures, "_save", keep)
    names = ["SIL", "take_bowl", "pour_cereals", "pour_milk", "stir"]
    truth = np.repeat([0, 1, 2, 3], 25)
    finetuned = np.where(np.arange(100) % 7 == 0, -1, truth)  # -1: another dataset's label won
    figures.figure6(truth, finetuned, truth, names, "a video", tmp_path / "fig6.png")
    legend = captured["figure"].legends[0]
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels == ["another dataset's label", "SIL", "take_bowl", "pour_cereals", "pour_milk"]  # "stir" unseen
    strip = captured["figure"].axes[0].images[0]
    drawn = {tuple(np.round(strip.cmap(strip.norm(value)), 3)) for value in (1, 2, 3, 4)}  # class k drawn as k + 1
    patches = legend.legend_handles
    assert {tuple(np.round(p.get_facecolor(), 3)) for p in patches[1:]} == drawn
    assert tuple(np.round(patches[0].get_facecolor(), 3)) not in drawn
