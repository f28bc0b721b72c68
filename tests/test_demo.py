"""`dina demo --quick` end to end (CI's smoke test of the main job): every stage runs, the report
shows every pipeline with files that exist, and a re-run reuses every stage."""

import json
import re

from dina.cli.main import main
from dina.demo import DemoPlan
from dina.demo.run import MODEL_STAGES, Stages, _resumable, goals, held_out_speech
from dina.io.atomic import write_json, write_jsonl
from dina.io.manifest import read_manifest


def test_demo_quick_runs_every_stage_writes_the_report_and_reuses_stages(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--threads", "1", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["model_training"]) == set(MODEL_STAGES)
    for stage in MODEL_STAGES:  # every model stage trained and logged its loss
        assert metrics["model_training"][stage]["loss"]["n"] == DemoPlan.quick().model_steps[stage]
    assert set(metrics["goals"]) == {"caption_attribute_accuracy", "vqa_accuracy", "geneval_overall", "asr_wer",
                                     "tts_judge_wer"}  # fmt: skip
    assert metrics["model_eval"]["counts"]["images"] == DemoPlan.quick().eval_limit
    assert metrics["vision_tokenizer"]["n"] > 0 and metrics["audio_tokenizer"]["clips"] > 0
    assert metrics["moe_share_last_window"]

    page = (out / "report.html").read_text()
    for section in ("See:", "Paint:", "Hear:", "Speak:", "Chat:", "MoE", "dNaViT", "Audio tokenizer"):
        assert section in page
    sources = re.findall(r'src="([^"]+)"', page)
    assert len([s for s in sources if s.startswith("showcase/paint_")]) == 4  # four aspect ratios
    assert sum(s.endswith(".png") for s in sources) >= 6 + 4 + 3  # reconstructions, paintings, figures
    for src in sources:
        assert (out / src).is_file(), src

    capsys.readouterr()
    assert main(["demo", "--quick", "--threads", "1", "--out", str(out)]) == 0
    logged = capsys.readouterr().out
    assert logged.count(": reused") == 13 and "..." not in logged.replace("reused", "")


def test_held_out_speech_keeps_only_unseen_sentences(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [{"path": "a.wav", "text": "one"}, {"path": "b.wav", "text": "two"}])
    raw = tmp_path / "held" / "manifest.jsonl"
    write_jsonl(raw, [{"path": "c.wav", "text": "two"}, {"path": "d.wav", "text": "three"}])
    kept = held_out_speech(raw, tmp_path / "train.jsonl")
    assert kept.parent == raw.parent and [r["text"] for r in read_manifest(kept)] == ["three"]


def test_goals_compare_in_the_right_direction():
    got = goals({"caption_attribute_accuracy": 0.8, "vqa_accuracy": 0.69, "asr_wer": 0.25, "tts_judge_wer": 0.41})
    assert got["caption_attribute_accuracy"]["met"] is True and got["vqa_accuracy"]["met"] is False
    assert got["asr_wer"]["met"] is True and got["tts_judge_wer"]["met"] is False
    assert got["geneval_overall"] == {"value": None, "goal": 0.5, "better": "higher", "met": None}


def test_a_stage_after_one_that_ran_runs_again_and_drops_its_stale_run(tmp_path):
    calls: list[str] = []
    names = ["a", "b"]

    def run_all(a_param: int) -> Stages:
        stages = Stages(tmp_path, names, lambda line: None)
        stages("a", {"p": a_param}, lambda: calls.append("a") or 1)
        stages("b", {"p": 0}, lambda: calls.append("b") or 2)
        return stages

    run_all(0)
    run_all(0)
    assert calls == ["a", "b"]  # both reused the second time
    run_all(1)
    assert calls == ["a", "b", "a", "b"]  # b's parameters did not change, but a ran again

    run = tmp_path / "run"
    write_json(run / "plan.json", {"steps": 3})
    (run / "metrics.jsonl").write_text("{}\n")
    quiet = Stages(tmp_path, ["c"], lambda line: None)
    assert _resumable(run, {"steps": 3}, quiet, print)  # interrupted, same plan, inputs unchanged
    quiet.upstream_ran = True  # an earlier stage ran again: the run was made from other inputs
    assert not _resumable(run, {"steps": 3}, quiet, print) and not run.exists()
    write_json(run / "plan.json", {"steps": 3})
    (run / "metrics.jsonl").write_text("{}\n")
    assert not _resumable(run, {"steps": 4}, Stages(tmp_path, ["c"], print), print) and not run.exists()
