"""`dina demo` end to end on a very small plan: every stage runs, is reused, and the report is written."""

import json

from dina.demo import DemoPlan, run_demo


def test_demo_runs_reuses_stages_and_writes_report(tmp_path):
    plan = DemoPlan(shapes_train=6, shapes_val=6, speech=2, pack_budget=512, pack_batch=4)
    logs: list[str] = []
    metrics = run_demo(tmp_path, plan, log=logs.append)
    assert metrics["shapes"]["judge"]["exact_scene_accuracy"] == 1.0
    assert 0.0 <= metrics["speech"]["asr_judge"]["wer"] <= 1.0
    assert metrics["packing"]["padding_avoided"] > 0
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    page = (tmp_path / "report.html").read_text()
    assert page.count("<img ") == 6 and page.count("<audio ") == 2
    for src in [*page.split('src="')[1:], *page.split("src='")[1:]]:
        assert (tmp_path / src.split('"')[0].split("'")[0]).exists()

    logs.clear()
    run_demo(tmp_path, plan, log=logs.append)
    assert sum("reused" in line for line in logs) == 5
