"""`dina eval model` (report Sec. 5, 3.2.4): the scoring helpers give the known answers on hand-made
strings, and a whole evaluation of a random tiny model writes every figure within its range. The
random model's answers are garbage; these tests check plumbing, not quality."""

import json

import numpy as np
import pytest

from dina.cli.main import main
from dina.data.shapes import generate
from dina.errors import BadInputFile
from dina.inference.evaluate import (
    EvalConfig,
    caption_attributes,
    evaluate_model,
    load_held_out,
    normalize_answer,
    paint_grid,
)
from dina.io.audio import save_wav
from dina.vision.preprocess import PreprocessConfig

TEXTS = ["a red circle on the left", "Describe the image.", "How many shapes are there? 2", "Say: red ball"] * 4
SMALL = EvalConfig(answer_tokens=4, caption_tokens=8, speech_tokens=10, max_side_tokens=3)


@pytest.fixture(scope="module")
def model_dir(make_model_dir):
    return make_model_dir(TEXTS)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    d = tmp_path_factory.mktemp("shapes")
    generate(d, 3, seed=0)
    return d


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """Two clips of harmonic tones of one voice (each the other's cloning reference)."""
    root = tmp_path_factory.mktemp("speech")
    rows = []
    for i, text in enumerate(("red ball", "two blue cubes")):
        t = np.arange(int(16_000 * (0.6 + 0.2 * i))) / 16_000
        phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * t)) / 16_000
        save_wav(root / f"{i}.wav", (0.2 * sum(np.sin(k * phase) / k for k in range(1, 5))).astype(np.float32))
        rows.append({"path": f"{i}.wav", "text": text, "voice": "tone/0", "seconds": float(t[-1])})
    (root / "held.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "held.jsonl"


def test_answers_are_compared_without_case_punctuation_articles_or_number_words():
    assert normalize_answer("The Two.") == normalize_answer("2") == "2"
    assert normalize_answer("Top-left!") == "top left"
    assert normalize_answer("an orange  Square") == "orange square"
    assert normalize_answer("twelve") == normalize_answer("12")
    assert normalize_answer("purple") != normalize_answer("purple square")


def test_caption_attributes_count_bound_color_shape_pairs():
    objects = [("red", "star"), ("blue", "circle"), ("green", "cross")]
    scores = caption_attributes("A small red star and two blue circles.", objects)
    assert scores == pytest.approx({"pair": 2 / 3, "color": 2 / 3, "shape": 2 / 3})
    swapped = caption_attributes("a blue star and a red circle", [("red", "star"), ("blue", "circle")])
    assert swapped == {"pair": 0.0, "color": 1.0, "shape": 1.0}  # every word, no object right
    assert caption_attributes("three green crosses", [("green", "cross")])["pair"] == 1.0
    assert caption_attributes("nothing here", []) == {"pair": 1.0, "color": 1.0, "shape": 1.0}


def test_paint_grid_is_the_tokenizers_grid_capped_per_side():
    pre = PreprocessConfig()
    assert paint_grid(420, 252, pre, 16) == (15, 9)  # ShapesWorld sizes are multiples of 28
    assert paint_grid(28 * 20, 28 * 10, pre, 16) == (16, 10)
    assert paint_grid(100, 100, pre, 16) == (4, 4)


def test_evaluation_writes_every_figure_in_range(model_dir, shapes, speech):
    r = evaluate_model(model_dir, [shapes, speech], limit=2, threads=1, config=SMALL, progress=False)
    for key in ("caption_attribute_accuracy", "vqa_accuracy", "ocr_accuracy", "geneval_overall"):
        assert r[key] is None or 0.0 <= r[key] <= 1.0, key
    for key in ("caption_attributes", "vqa_accuracy_by_kind", "geneval"):
        assert r[key] and all(0.0 <= v <= 1.0 for v in r[key].values()), key
    assert set(r["geneval"]) == {"object", "count", "color", "position"}
    assert r["ocr_accuracy"] is None or r["counts"]["ocr"] > 0  # only rows with a sign are read
    for key in ("asr_wer", "tts_judge_wer"):
        assert r[key] >= 0.0, key
    # Cloning runs only with the optional speaker encoder (`make speaker`).
    assert (r["clone_judge_wer"] is None) == (r["speaker_similarity"] is None and r["counts"]["clone"] == 0)
    pvs = r["parallel_vs_serial"]
    assert pvs["parallel_wer"] == r["tts_judge_wer"] and pvs["serial_wer"] >= 0.0
    if pvs["serial_empty"] == 2:  # empty speech counts as every word deleted
        assert pvs["serial_wer"] == 1.0
    if r["speaker_similarity"] is None:
        assert any("speaker_similarity" in note for note in r["notes"])
    else:
        assert -1.0 <= r["speaker_similarity"] <= 1.0 and r["counts"]["clone"] == 2 and r["clone_judge_wer"] >= 0
    assert r["counts"]["images"] == 2 and r["counts"]["geneval"] == 2 and r["counts"]["tts"] == 2
    assert r["counts"]["vqa"] > 0 and r["counts"]["asr_words"] == 5
    assert set(r["seconds"]) == {"understanding", "generation", "asr", "tts", "cloning"}
    assert r["settings"]["speech_tokens"] == 10 and r["settings"]["text"]["temperature"] == 0.0
    json.dumps(r)  # the CLI writes it as JSON


def test_the_same_seed_gives_the_same_figures(model_dir, speech):
    """Speech codes are sampled, and the Whisper judge samples when its beam search fails (common
    on unintelligible speech): both are seeded, so a run repeats."""
    runs = [evaluate_model(model_dir, [speech], threads=1, config=SMALL, seed=3, progress=False) for _ in range(2)]
    for r in runs:
        r.pop("seconds")
    assert runs[0] == runs[1]
    assert runs[0]["caption_attribute_accuracy"] is None and any("ShapesWorld" in n for n in runs[0]["notes"])


def test_bad_data_and_a_missing_model_are_one_line_errors(tmp_path, shapes, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputFile, match=r"holds no manifest\.jsonl"):
        load_held_out([tmp_path / "empty"])
    out = tmp_path / "eval.json"
    for model, data in ((tmp_path / "no-model", shapes), (tmp_path / "no-model", tmp_path / "empty")):
        code = main(["eval", "model", "--model", str(model), "--data", str(data), "--json", str(out), "--limit", "1"])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("dina: error:") and err.count("\n") == 1, err
    assert not out.exists()
