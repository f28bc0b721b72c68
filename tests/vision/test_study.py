"""`dina vision study scene-depth`, `qa` and `tokens`: deeper RVQs quantize finer, the judge's ceiling is
exact, every question is counted and scored, the token probe reads cells where they are, files are written."""

import dataclasses
import json
from collections import Counter

import numpy as np
import pytest
import torch

import dina.vision.study as study
from dina.data.shapes.labels import CELL_CLASSES, CELL_GROUPS, cell_fractions, label_map
from dina.data.shapes.scene import Scene
from dina.errors import BadInputFile
from dina.training.checkpoint import save_checkpoint
from dina.vision.sae_objective import AnswerDecoder, AnswerDecoderConfig, WordVocab
from dina.vision.train import cache_features


@pytest.fixture(scope="module")
def world(shapes_world, tmp_path_factory):
    data, model, records = shapes_world
    tokenizer = tmp_path_factory.mktemp("tok")
    model.save_pretrained(tokenizer)
    return data, tokenizer, model, records


def test_scene_depth_deeper_is_finer_and_originals_parse_exactly(world, monkeypatch):
    _, _, model, records = world
    monkeypatch.setattr(study, "SCENE_DEPTHS", (1, 4))
    result = study.scene_depth(model, cache_features(model, records), records, steps=6, seed=0)
    assert result["originals"] == 1.0  # the judge reads every generated scene exactly
    assert result["continuous"]["feature_rel_error"] == 0.0
    assert 0.0 < result["levels_4"]["feature_rel_error"] < result["levels_1"]["feature_rel_error"]
    n_signs = sum(r.row["scene"]["sign"] is not None for r in records)
    for key in ("continuous", "tokenizer_codes", "levels_1", "levels_4"):
        assert result[key]["signs"] == n_signs
        assert 0.0 <= result[key]["judge_exact_scene"] <= 1.0
        assert 0 <= result[key]["signs_found"] <= n_signs
    assert result["levels_4"]["bits_per_token"] == 4 * 10  # 1024 codes per level in tiny
    assert set(result["summary"]["judge_exact_scene"]) == {
        "levels_1",
        "levels_4",
        "continuous",
        "tokenizer_codes",
        "originals",
    }


def test_run_study_writes_json_and_plot(world, tmp_path, monkeypatch):
    data, tokenizer, _, _ = world
    monkeypatch.setattr(study, "SCENE_DEPTHS", (1, 2))
    result = study.run_study("scene-depth", out=tmp_path, data=data, val=data, tokenizer=tokenizer, steps=3)
    saved = json.loads((tmp_path / "scene-depth.json").read_text())
    assert saved["summary"] == result["summary"]
    assert (tmp_path / "scene-depth.png").stat().st_size > 0


def test_scene_depth_needs_scenes(world, tmp_path):
    _, _, model, records = world
    plain = [dataclasses.replace(r, row=None) for r in records[:2]]
    with pytest.raises(BadInputFile, match="scenes"):
        study.scene_depth(model, cache_features(model, records), plain, steps=1, seed=0)


@pytest.fixture(scope="module")
def run_dir(world, tmp_path_factory):
    """A training run's layout around an untrained tokenizer: RUN/tokenizer, RUN/vocab.json, RUN/ckpt/sae."""
    _, _, model, records = world
    run = tmp_path_factory.mktemp("run")
    model.save_pretrained(run / "tokenizer")
    vocab = WordVocab.build([t for r in records for qa in r.row["qa"] for t in (qa["question"], str(qa["answer"]))])
    vocab.save(run / "vocab.json")
    torch.manual_seed(0)
    answer = AnswerDecoder(AnswerDecoderConfig(vocab_size=len(vocab), feature_dim=model.config.sae.out_dim))
    save_checkpoint(run / "ckpt" / "sae", {"tokenizer": model, "answer_decoder": answer}, step=1)
    return run


def _kinds(records) -> Counter:
    return Counter(study._question_kind(qa) for r in records for qa in r.row["qa"])


def test_qa_counts_every_question_and_scores_exact_answers(world, run_dir, monkeypatch):
    _, _, model, records = world
    answer, vocab = study.load_answer_decoder(run_dir / "tokenizer", model)
    expected = iter(str(qa["answer"]).upper() for r in records for qa in r.row["qa"] for _ in study.QA_SOURCES)
    # an oracle that answers every question right, in upper case (answers compare as the vocabulary words)
    monkeypatch.setattr(study, "greedy_answer", lambda *a: [next(expected).lower()])
    result = study.qa_accuracy(model, answer, vocab, records)
    assert result["questions"] == dict(_kinds(records)) and "sign_word" in result["questions"]
    assert all(v == 1.0 for source in study.QA_SOURCES for v in result[source].values())
    monkeypatch.setattr(study, "greedy_answer", lambda *a: ["not an answer"])
    wrong = study.qa_accuracy(model, answer, vocab, records)
    assert all(v == 0.0 for source in study.QA_SOURCES for v in wrong[source].values())


def test_run_study_qa_reads_the_answer_decoder_of_the_run(world, run_dir, tmp_path):
    data, _, _, records = world
    result = study.run_study("qa", out=tmp_path, data=data, val=data, tokenizer=run_dir / "tokenizer")
    kinds = _kinds(records)
    for source in study.QA_SOURCES:  # overall is the question-weighted mean of the kinds
        weighted = sum(result[source][k] * n for k, n in kinds.items()) / sum(kinds.values())
        assert result[source]["overall"] == pytest.approx(weighted)
    assert json.loads((tmp_path / "qa.json").read_text())["summary"] == result["summary"]
    assert (tmp_path / "qa.png").stat().st_size > 0


def test_qa_without_the_training_run_names_what_is_missing(world, tmp_path):
    data, tokenizer, _, _ = world  # a tokenizer saved on its own, without vocab.json or ckpt/sae
    with pytest.raises(BadInputFile, match=r"vocab\.json is missing"):
        study.run_study("qa", out=tmp_path / "out", data=data, val=data, tokenizer=tokenizer)


def test_qa_needs_questions(world, run_dir):
    _, _, model, records = world
    answer, vocab = study.load_answer_decoder(run_dir / "tokenizer", model)
    plain = [dataclasses.replace(r, row=None) for r in records[:2]]
    with pytest.raises(BadInputFile, match="questions"):
        study.qa_accuracy(model, answer, vocab, plain)


def test_cell_targets_are_the_scene_labels_on_the_token_grid(world):
    _, _, model, records = world
    record = records[0]
    targets = study._cell_targets(model, record)
    _, (h, w) = model.resized(record.rgb)
    assert targets.shape == (h * w, study.PROBE_CELLS**2, len(CELL_CLASSES))
    expected = cell_fractions(label_map(Scene.from_dict(record.row["scene"])), study.PROBE_CELLS)
    np.testing.assert_array_equal(targets.numpy(), expected)  # ShapesWorld sizes need no resize
    big = dataclasses.replace(record, rgb=np.repeat(np.repeat(record.rgb, 3, axis=0), 3, axis=1))
    _, (h3, w3) = model.resized(big.rgb)  # over the pixel budget: the labels follow the resize
    assert study._cell_targets(model, big).shape[0] == h3 * w3 < 9 * h * w


def _labels_as_features(model, records, shuffle: bool):
    """A feature per token = its own flattened cell targets, or (shuffle) those of other tokens of its
    image, drawn anew on every call so that the probe cannot learn the permutation."""
    calls = []

    def features(m, recs, batch=16):
        out = [study._cell_targets(m, r).flatten(1) for r in recs]
        calls.append(None)
        if shuffle:
            gen = torch.Generator().manual_seed(len(calls))
            out = [f[torch.randperm(len(f), generator=gen)] for f in out]
        return out

    return features


@pytest.mark.parametrize("shuffle", [False, True])
def test_token_probe_reads_cells_only_where_they_are(world, monkeypatch, shuffle):
    _, _, model, records = world
    monkeypatch.setattr(study, "cache_features", _labels_as_features(model, records, shuffle))
    monkeypatch.setattr(model, "quantized_embeddings", lambda z: z)
    result = study.token_probe(model, records, records, steps=150, seed=0)
    assert set(result["cells"]) == set(CELL_GROUPS) and result["cells"]["character"] > 0
    for source in study.TOKEN_SOURCES:
        if shuffle:  # the right labels on the wrong tokens: the characters cannot be read
            assert result[source]["character"] < 0.3
        else:  # a token's own labels: every group is read
            assert min(result[source][g] for g in CELL_GROUPS) > 0.9
    assert result["summary"]["direction"].startswith("the codes keep")


def test_token_study_writes_json_and_plot_and_needs_scenes(world, tmp_path):
    data, tokenizer, model, records = world
    result = study.run_study("tokens", out=tmp_path, data=data, val=data, tokenizer=tokenizer, steps=2)
    assert json.loads((tmp_path / "tokens.json").read_text())["summary"] == result["summary"]
    assert (tmp_path / "tokens.png").stat().st_size > 0
    plain = [dataclasses.replace(r, row=None) for r in records[:2]]
    with pytest.raises(BadInputFile, match="scenes"):
        study.token_probe(model, plain, plain, steps=1, seed=0)
