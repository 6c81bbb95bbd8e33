"""The feature model behind `python -m pipeline synthetic-features`: its presets and the parts v2 adds
(class means from shared verb and object parts, participant offsets, smooth noise, softplus)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.__main__ import main
from pipeline.data.synthetic.features import (
    DEFAULT_PRESET,
    FeatureModel,
    class_means,
    class_parts,
    feature_model,
    write_folder,
)

CLASSES = ["SIL", "pour_milk", "pour_cereals", "cut_tomato", "place_tomato_into_bowl", "put_egg2plate"]


def ground_truth(root, videos=("P01_tea", "P01_coffee", "P02_tea", "P03_tea"), frames=60):
    (root / "groundTruth").mkdir(parents=True)
    (root / "mapping.txt").write_text("".join(f"{i} {name}\n" for i, name in enumerate(CLASSES)))
    for video in videos:
        labels = np.repeat(np.arange(len(CLASSES)), frames // len(CLASSES))
        (root / "groundTruth" / f"{video}.txt").write_text("".join(f"{CLASSES[c]}\n" for c in labels))
    return root


def features(folder, video):
    return np.load(folder / "features" / f"{video}.npy").T  # (T, D)


def test_class_names_split_into_a_verb_and_objects():
    assert class_parts("pour_milk") == ("pour", ("milk",))
    assert class_parts("place_tomato_into_bowl") == ("place", ("tomato", "bowl"))
    assert class_parts("put_egg2plate") == ("put", ("egg", "plate"))
    assert class_parts("cutTomato") == ("cut", ("tomato",))
    assert class_parts("SIL") == ("sil", ())


def test_shared_parts_make_similar_classes_closer():
    own = np.random.default_rng(0).normal(size=(len(CLASSES), 4000))
    model = FeatureModel(verb_share=0.4, object_share=0.3)
    means = class_means(CLASSES, own, model, np.random.default_rng(1))

    def cosine(a, b):
        a, b = means[CLASSES.index(a)], means[CLASSES.index(b)]
        return a @ b / np.linalg.norm(a) / np.linalg.norm(b)

    assert cosine("pour_milk", "pour_cereals") == pytest.approx(0.4, abs=0.05)  # the verb's share
    assert cosine("cut_tomato", "place_tomato_into_bowl") == pytest.approx(0.3 / np.sqrt(2), abs=0.05)
    assert abs(cosine("pour_milk", "cut_tomato")) < 0.05
    # every mean keeps unit variance per dimension, whatever its parts
    np.testing.assert_allclose(means.var(axis=1), 1.0, atol=0.1)
    # without shares the means are the classes' own
    np.testing.assert_array_equal(class_means(CLASSES, own, FeatureModel(), np.random.default_rng(1)), own)
    with pytest.raises(ValueError, match="sum <= 1"):
        class_means(CLASSES, own, FeatureModel(verb_share=0.7, object_share=0.5), np.random.default_rng(1))


def test_presets():
    assert DEFAULT_PRESET == "v1" and feature_model("breakfast") == FeatureModel()
    v2 = feature_model("breakfast", "v2")
    assert v2.positive and v2.participant > 0 and v2.verb_share > 0 and v2.smooth > 0
    assert feature_model("breakfast", "v2", participant=0.0).participant == 0.0
    with pytest.raises(ValueError, match="preset must be one of"):
        feature_model("breakfast", "v3")


def test_write_folder_defaults_to_the_first_model(tmp_path):
    source = ground_truth(tmp_path / "gt")
    write_folder(source, tmp_path / "default", name="toy")
    write_folder(source, tmp_path / "v1", name="toy", model=feature_model("toy", "v1"))
    for video in ("P01_tea", "P03_tea"):
        np.testing.assert_array_equal(features(tmp_path / "default", video), features(tmp_path / "v1", video))
    assert json.loads((tmp_path / "default/synthesis.json").read_text())["model"]["positive"] is False


def test_participant_offsets_are_shared_by_a_persons_videos(tmp_path):
    source = ground_truth(tmp_path / "gt")
    # no class signal, almost no noise, no scale or shift: what is left is the person's offset (rotated)
    model = FeatureModel(dim=16, noise=0.01, drift=0.01, separation=0.0, participant=3.0, gap=0.0)
    write_folder(source, tmp_path / "out", name="toy", model=model)
    level = {video: features(tmp_path / "out", video).mean(axis=0) for video in ("P01_tea", "P01_coffee", "P02_tea")}
    assert np.linalg.norm(level["P01_tea"] - level["P01_coffee"]) < 0.1
    assert np.linalg.norm(level["P01_tea"] - level["P02_tea"]) > 3.0


def test_smooth_noise_is_correlated_in_time_and_softplus_makes_features_positive(tmp_path):
    source = ground_truth(tmp_path / "gt", videos=("P01_tea",), frames=3000)

    def lag_one_correlation(model):
        write_folder(source, tmp_path / str(model.smooth), name="toy", model=model)
        values = features(tmp_path / str(model.smooth), "P01_tea")
        noise = values - values.mean(axis=0)
        return np.mean([np.corrcoef(noise[1:, d], noise[:-1, d])[0, 1] for d in range(values.shape[1])])

    base = {"dim": 8, "separation": 0.0, "drift": 0.0, "gap": 0.0}
    assert abs(lag_one_correlation(FeatureModel(**base, smooth=0.0))) < 0.1
    assert lag_one_correlation(FeatureModel(**base, smooth=0.5)) == pytest.approx(0.5 * 0.95, abs=0.1)
    write_folder(source, tmp_path / "positive", name="toy", model=feature_model("toy", "v2", dim=8))
    assert (features(tmp_path / "positive", "P01_tea") >= 0).all()
    with pytest.raises(ValueError, match="smooth is a share"):
        write_folder(source, tmp_path / "bad", name="toy", model=FeatureModel(smooth=1.5))


def test_command_line_takes_a_preset_and_field_changes(tmp_path, capsys):
    source = ground_truth(tmp_path / "gt")
    assert main(["synthetic-features", "--source", str(source), "--output", str(tmp_path / "out"),
                 "--preset", "v2", "--participant", "0", "--positive", "no", "--dim", "12"]) == 0
    model = json.loads((tmp_path / "out/synthesis.json").read_text())["model"]
    assert model["dim"] == 12 and model["participant"] == 0.0 and model["positive"] is False
    assert model["verb_share"] == feature_model("gt", "v2").verb_share  # the preset's, unchanged
    assert features(tmp_path / "out", "P01_tea").shape == (60, 12)
    assert "wrote 4 videos" in capsys.readouterr().out
