"""Segmentation metrics against hand-worked examples (MS-TCN's definitions)."""

import pytest

from pipeline.evaluation.metrics import (
    Segment,
    edit_score,
    f1_counts,
    f1_from_counts,
    levenshtein,
    mstcn_background,
    pool,
    score_video,
    segments,
)


def test_segments_are_runs_and_drop_background():
    labels = [0, 0, 3, 3, 3, 0, 1, 1]
    assert segments(labels) == [Segment(0, 0, 2), Segment(3, 2, 5), Segment(0, 5, 6), Segment(1, 6, 8)]
    assert segments(labels, background=[0]) == [Segment(3, 2, 5), Segment(1, 6, 8)]
    assert segments([]) == []


def test_levenshtein():
    assert levenshtein([1, 2, 3], [1, 2, 3]) == 0
    assert levenshtein([1, 2, 3], [1, 3]) == 1
    assert levenshtein([], [4, 5]) == 2
    assert levenshtein([1, 2], [2, 1]) == 2


def test_edit_score_hand_worked():
    # truth: one segment [0]; prediction: segments [0, 1, 0] -> distance 2, longest 3
    assert edit_score([0, 0, 1, 0, 0], [0, 0, 0, 0, 0]) == pytest.approx(100 * (1 - 2 / 3))
    # over-segmentation is punished, boundary shifts are not
    assert edit_score([0, 1, 1, 1, 2, 2], [0, 0, 1, 1, 1, 2]) == 100.0
    # background segments do not count: [5, 7] against [5, 6, 7] -> 1 / 3
    assert edit_score([5, 5, 9, 7], [5, 6, 9, 7], background=[9]) == pytest.approx(100 * (1 - 1 / 3))
    assert edit_score([9, 9], [9, 9], background=[9]) == 100.0


def test_f1_hand_worked_at_each_threshold():
    truth = [1] * 10 + [2] * 10 + [3] * 10
    # predicted 1 over frames 0-3: IoU 4/10 = 0.4; 2 over 4-19: IoU 10/16 = 0.625;
    # 3 over 20-29: IoU 1.0; a spurious 1 would be a false positive
    predicted = [1] * 4 + [2] * 16 + [3] * 10
    assert f1_counts(predicted, truth, 0.10) == (3, 0, 0)
    assert f1_counts(predicted, truth, 0.25) == (3, 0, 0)
    assert f1_counts(predicted, truth, 0.50) == (2, 1, 1)  # the 0.4 overlap fails at 50%
    assert f1_from_counts(2, 1, 1) == pytest.approx(100 * 2 * (2 / 3) * (2 / 3) / (4 / 3))
    # two predictions of one true segment: the second finds it used and is a false positive
    assert f1_counts([1, 1, 1, 2, 1, 1], [1] * 6, 0.1) == (1, 2, 0)


def test_f1_matches_the_best_overlap_even_when_it_is_used():
    # truth: 1 over 0-9, 3 at 10, 1 over 11-29; predicted 1 over 0-4 (IoU 0.5 with the first), then 1 over 6-11:
    # its best overlap is the first true segment again (4/12), already used, so it is a false positive
    # although the second true segment of label 1 (IoU 1/24) is free and passes the threshold (MS-TCN's eval.py)
    truth = [1] * 10 + [3] + [1] * 19
    predicted = [1] * 5 + [2] + [1] * 6 + [4] * 18
    assert f1_counts(predicted, truth, 0.01) == (1, 3, 2)


def test_f1_ignores_background_and_handles_no_match():
    assert f1_counts([0, 0, 4, 4], [0, 0, 4, 4], 0.5, background=[0]) == (1, 0, 0)
    assert f1_counts([3, 3, 3, 3], [4, 4, 4, 4], 0.1) == (0, 1, 1)
    assert f1_from_counts(0, 1, 1) == 0.0


def test_video_scores_and_pooling():
    a = score_video([1, 1, 2, 2], [1, 1, 1, 2])  # 3 / 4 correct, edit 100
    b = score_video([5, 5, 5, 5, 5, 5], [5, 5, 6, 6, 5, 5])  # 4 / 6 correct, edit 1 - 2/3
    assert a.accuracy == 75.0 and a.edit == 100.0
    both = pool([a, b])
    assert both.videos == 2 and both.frames == 10 and both.correct == 7
    assert both.accuracy == pytest.approx(70.0)
    assert both.edit == pytest.approx((100.0 + 100 * (1 - 2 / 3)) / 2)
    assert both.f1_counts[0.5] == tuple(x + y for x, y in zip(a.f1_counts[0.5], b.f1_counts[0.5]))
    assert set(both.as_row()) == {"accuracy", "edit", "f1@10", "f1@25", "f1@50"}
    with pytest.raises(ValueError, match="one length"):
        score_video([1, 2], [1, 2, 3])


def test_mstcn_convention_leaves_out_only_a_class_named_background():
    assert mstcn_background(["SIL", "take", "pour"]) == ()  # Breakfast: SIL segments count
    assert mstcn_background(["take", "background", "pour"]) == (1,)
    truth, predicted = [0, 0, 1, 1, 0, 2, 2], [0, 1, 1, 1, 0, 0, 2]
    ours = edit_score(predicted, truth, background=[0])  # [1, 2] vs [1, 2]
    theirs = edit_score(predicted, truth, background=mstcn_background(["SIL", "take", "pour"]))
    assert ours == 100.0 and theirs == pytest.approx(100 * (1 - 0 / 5))  # [0,1,0,2] vs [0,1,0,2]
    assert edit_score([0, 1, 0], [1, 1, 1], background=mstcn_background(["SIL", "x"])) == pytest.approx(100 / 3)
