"""`dina demo`: the main job. On a fresh clone, with nothing downloaded, it generates the worlds'
data, trains both tokenizers and the native model (`text` → `prealign` → `pretrain` → `sft`)
with the `tiny` presets, evaluates the model on held-out data, runs every pipeline, and writes
`report.html` and `metrics.json` (report Sec. 4 for the stages, Sec. 5 for what is measured).

`run` holds the stages and the plan, `showcase` the pipelines' samples, `figures` and `report`
the page."""

from dina.demo.run import DemoPlan, run_demo

__all__ = ["DemoPlan", "run_demo"]
