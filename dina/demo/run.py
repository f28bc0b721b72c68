"""The demo's stages, run in order, each reused on a re-run when its parameters are unchanged.

Each stage stores its result under `OUT/stages/NAME.json` with its parameters and wall time.
A training stage that was interrupted resumes from its last checkpoint (the loops' exact
resume), so killing `make demo` loses at most one checkpoint interval.

Stages (report Sec. 4's order: tokenizers, then pre-align, pre-train and SFT of the model):
data (ShapesWorld train/val, SpeechWorld by ten training voices plus a held-out set by four
other voices keeping only sentences never heard in training), the dNaViT and audio tokenizers
and their held-out figures, the model's `text` → `prealign` → `pretrain` → `sft` stages,
`dina eval model` on the held-out data, and the showcase (every pipeline on held-out inputs).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dina.bench import goal
from dina.io.atomic import ensure_dir, write_json, write_jsonl
from dina.io.manifest import read_manifest

# SpeechWorld voices: the model and the audio tokenizer train on the first set; ASR is scored on
# the second (voices never heard in training), as in the audio tokenizer's own evaluation.
TRAIN_VOICES = (
    "hibari/heart",
    "flite/awb",
    "flite/slt",
    "flite/kal",
    "festival/cmu_us_slt_arctic_hts",
    "espeak-ng/en-us",
    "espeak-ng/en-gb",
    "espeak-ng/en+f3",
    "espeak-ng/en-us+f4",
    "espeak-ng/en-gb-scotland",
)
HELD_OUT_VOICES = ("hibari/heart-gb", "flite/rms", "festival/kal_diphone", "espeak-ng/en+m3")
MODEL_STAGES = ("text", "prealign", "pretrain", "sft")


@dataclass(frozen=True, kw_only=True)
class DemoPlan:
    """Data sizes and every stage's steps. The default fits `make demo` in an hour on 2 cores by
    training the tokenizers about half as long as their own quality runs (`dina vision|audio
    train` defaults) and giving the time saved to the model; `quick()` is CI's smoke test."""

    shapes_train: int = 2000
    shapes_val: int = 200
    speech_train: int = 2000
    speech_held: int = 260  # generated; rows whose sentence occurs in training are then dropped
    vision_steps: Mapping[str, int] = field(
        default_factory=lambda: {"sae": 250, "rvq": 300, "decoder": 600, "refiner": 150}
    )
    audio_steps: Mapping[str, int] = field(
        default_factory=lambda: {"warmup": 150, "joint": 500, "decoder": 250, "refiner": 100, "vocoder": 1000}
    )
    model_steps: Mapping[str, int] = field(
        default_factory=lambda: {"text": 300, "prealign": 200, "pretrain": 2000, "sft": 800}
    )
    # Pre-training's mixture, re-weighted from the report's (`STAGE_MIXTURES["pretrain"]`) towards
    # what the demo scores: twice the captions and VQA, more ASR, less TTS and interleaved speech.
    # At this size the model learns to read its inputs slowly (the loss gap between matched and
    # swapped images grows with the understanding data seen), and the demo has minutes, not days.
    pretrain_mixture: Mapping[str, float] = field(
        default_factory=lambda: {
            "text": 0.04, "caption": 0.2, "vqa": 0.2, "t2i": 0.14, "interleaved": 0.04,
            "asr": 0.14, "tts": 0.14, "intlv": 0.04, "intlv_ta": 0.04, "pure_audio": 0.02,
        }
    )  # fmt: skip
    tokenizer_eval: int = 60  # held-out images / clips scored for the tokenizers' figures
    eval_limit: int = 40  # held-out rows per manifest for `dina eval model`
    threads: int = 2
    seed: int = 0

    @classmethod
    def quick(cls) -> DemoPlan:
        return cls(
            shapes_train=48,
            shapes_val=12,
            speech_train=32,
            speech_held=24,
            vision_steps={"sae": 6, "rvq": 6, "decoder": 6, "refiner": 4},
            audio_steps={"warmup": 4, "joint": 6, "decoder": 4, "refiner": 4, "vocoder": 6},
            model_steps={"text": 8, "prealign": 6, "pretrain": 10, "sft": 8},
            tokenizer_eval=6,
            eval_limit=3,
        )

    def params(self) -> dict[str, Any]:
        return as_json(dataclasses.asdict(self))


def as_json(value: Any) -> Any:
    """`value` as it reads back from JSON (tuples as lists), so that stored and current compare equal."""
    return json.loads(json.dumps(value))


class Stages:
    """Runs named stages under `out`, reusing finished ones, and logs each with the time elapsed
    (the training and evaluation loops inside show progress bars with their ETAs)."""

    def __init__(self, out: Path, names: list[str], log: Callable[[str], None]) -> None:
        self.out, self.names, self.log = out, names, log
        self.start = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self.ran = False  # once a stage runs, every later one runs too: it may depend on it
        self.upstream_ran = False  # whether an earlier stage ran in this call (set per stage)

    def __call__(self, name: str, params: Mapping[str, Any], run: Callable[[], Any]) -> Any:
        record = self.out / "stages" / f"{name}.json"
        params = as_json(params)
        index = self.names.index(name) + 1
        if record.exists() and not self.ran:
            done = json.loads(record.read_text())
            if done.get("params") == params:
                self.seconds[name] = done["seconds"]
                self.log(f"[demo {index}/{len(self.names)}] {name}: reused ({done['seconds']:.0f} s when it ran)")
                return done["result"]
        elapsed = time.perf_counter() - self.start
        self.log(f"[demo {index}/{len(self.names)}] {name} ... ({elapsed / 60:.1f} min elapsed)")
        self.upstream_ran, self.ran = self.ran, True
        t0 = time.perf_counter()
        result = run()
        took = time.perf_counter() - t0
        write_json(record, {"params": params, "seconds": round(took, 1), "result": result})
        self.seconds[name] = round(took, 1)
        self.log(f"[demo {index}/{len(self.names)}] {name}: done in {took:.0f} s")
        return result


def held_out_speech(raw_manifest: Path, train_manifest: Path) -> Path:
    """`unseen.jsonl` beside `raw_manifest`: its rows whose sentence never occurs in training."""
    seen = {row["text"] for row in read_manifest(train_manifest)}
    rows = [row for row in read_manifest(raw_manifest) if row["text"] not in seen]
    path = raw_manifest.parent / "unseen.jsonl"
    write_jsonl(path, rows)
    return path


def _data_stages(out: Path, plan: DemoPlan, stage: Stages) -> tuple[dict[str, Path], float]:
    """The data's paths, and the seconds of training speech."""
    from dina.data import shapes
    from dina.data.speech.world import generate_world

    data = out / "data"
    s = plan.seed

    def world(name: str, n: int, seed: int, voices: tuple[str, ...]) -> dict:
        w = generate_world(data / name, n, seed, list(voices))
        return {"manifest": str(w.manifest), "n": w.n, "seconds_audio": round(w.seconds_audio, 1)}

    stage("shapes", {"train": plan.shapes_train, "val": plan.shapes_val, "seed": s}, lambda: {
        "train": str(shapes.generate(data / "shapes_train", plan.shapes_train, s, "train")),
        "val": str(shapes.generate(data / "shapes_val", plan.shapes_val, s, "val")),
    })  # fmt: skip
    train = stage("speech", {"n": plan.speech_train, "seed": s, "voices": TRAIN_VOICES}, lambda: world(
        "speech_train", plan.speech_train, s, TRAIN_VOICES))  # fmt: skip
    held = stage("speech_held", {"n": plan.speech_held, "seed": s + 1, "voices": HELD_OUT_VOICES}, lambda: {
        **world("speech_held", plan.speech_held, s + 1, HELD_OUT_VOICES),
        "unseen": str(held_out_speech(data / "speech_held" / "manifest.jsonl", Path(train["manifest"]))),
    })  # fmt: skip
    paths = {
        "shapes_train": data / "shapes_train",
        "shapes_val": data / "shapes_val",
        "speech_train": data / "speech_train",
        "speech_held": Path(held["unseen"]),
    }
    return paths, train["seconds_audio"]


def _scalars(result: Mapping[str, Any]) -> dict[str, Any]:
    """An evaluation without its per-item lists (kept in the stage record)."""
    return {k: v for k, v in result.items() if not (isinstance(v, list) and v and isinstance(v[0], (dict, str)))}


def _resumable(directory: Path, plan: Mapping[str, Any], stages: Stages, log: Callable[[str], None]) -> bool:
    """Whether `directory` holds an interrupted run of this very plan on unchanged inputs (the
    stage resumes it). Any other run there is a stale stage of an earlier demo and is removed:
    one of another plan, or one made before an earlier stage ran again."""
    if not (directory / "metrics.jsonl").exists():
        return False
    stored = directory / "plan.json"
    same_plan = stored.exists() and json.loads(stored.read_text()) == as_json(plan)
    if same_plan and not stages.upstream_ran:
        return True
    log(f"[demo] {directory} holds a stale run: starting it again")
    shutil.rmtree(directory)
    return False


def _tokenizer_stage(
    stages: Stages,
    name: str,
    train: Callable[..., Any],
    data: Path,
    out: Path,
    config: Any,
    plan: Any,
    log: Callable[[str], None],
) -> None:
    """Train a tokenizer (`train_vision` or `train_audio`) into `out/tokenizer` as stage `name`."""
    params = dataclasses.asdict(plan)

    def run() -> dict:
        train(data, out, config, plan, resume=_resumable(out, params, stages, log), log=log)
        return {"tokenizer": str(out / "tokenizer")}

    stages(name, {"plan": params}, run)


def run_demo(out: str | Path, plan: DemoPlan, log: Callable[[str], None] = print) -> dict:
    """Every stage (module docstring); writes `metrics.json` and `report.html` under `out`."""
    from dina.audio.evaluate import evaluate_audio
    from dina.audio.tokenizer import AudioTokenizer
    from dina.audio.train import AudioTrainPlan, train_audio
    from dina.demo.report import write_report
    from dina.demo.showcase import showcase
    from dina.inference.evaluate import evaluate_model
    from dina.model.train import default_plan, train_model
    from dina.presets import tiny
    from dina.training.metrics import MetricsLog
    from dina.vision.evaluate import evaluate_vision
    from dina.vision.tokenizer import VisionTokenizer
    from dina.vision.train import VisionTrainPlan, train_vision

    out = ensure_dir(out)
    names = ["shapes", "speech", "speech_held", "vision", "vision_eval", "audio", "audio_eval"]
    names += [f"model_{s}" for s in MODEL_STAGES] + ["eval_model", "showcase"]
    stage = Stages(out, names, log)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(plan.threads)
    try:
        data, speech_seconds = _data_stages(out, plan, stage)
        preset = tiny()
        vision_dir, audio_dir = out / "vision", out / "audio"

        vision_plan = VisionTrainPlan(seed=plan.seed).with_stage_steps(plan.vision_steps)
        _tokenizer_stage(
            stage, "vision", train_vision, data["shapes_train"], vision_dir, preset.vision, vision_plan, log
        )
        vision_eval = stage("vision_eval", {"n": plan.tokenizer_eval}, lambda: evaluate_vision(
            VisionTokenizer.from_pretrained(vision_dir / "tokenizer"), data["shapes_val"] / "manifest.jsonl",
            limit=plan.tokenizer_eval))  # fmt: skip
        audio_plan = AudioTrainPlan(seed=plan.seed).with_stage_steps(plan.audio_steps)
        _tokenizer_stage(stage, "audio", train_audio, data["speech_train"], audio_dir, preset.audio, audio_plan, log)
        audio_eval = stage("audio_eval", {"n": plan.tokenizer_eval}, lambda: evaluate_audio(
            AudioTokenizer.from_pretrained(audio_dir / "tokenizer"), data["speech_held"], limit=plan.tokenizer_eval))  # fmt: skip

        model_data = [data["shapes_train"], data["speech_train"]]
        init: Path | None = None
        summaries = {}
        for name in MODEL_STAGES:
            run_dir = out / "model" / name
            stage_plan = default_plan(name, steps=plan.model_steps[name], seed=plan.seed)
            if name == "pretrain":
                stage_plan = dataclasses.replace(stage_plan, mixture=dict(plan.pretrain_mixture))

            def train(run_dir: Path = run_dir, stage_plan: Any = stage_plan, init: Path | None = init) -> dict:
                train_model(
                    model_data, run_dir, preset, stage_plan,
                    vision_tokenizer=vision_dir / "tokenizer", audio_tokenizer=audio_dir / "tokenizer",
                    init=init, resume=_resumable(run_dir, stage_plan.to_dict(), stage, log), log=log,
                )  # fmt: skip
                return json.loads((run_dir / "summary.json").read_text())

            summaries[name] = stage(f"model_{name}", {"plan": stage_plan.to_dict(), "init": str(init)}, train)
            init = run_dir
        model_dir = out / "model" / "sft" / "model"
        held_data = [data["shapes_val"], data["speech_held"]]
        evaluation = stage("eval_model", {"limit": plan.eval_limit, "seed": plan.seed}, lambda: evaluate_model(
            model_dir, held_data, limit=plan.eval_limit, seed=plan.seed, threads=plan.threads))  # fmt: skip
        shown = stage("showcase", {"seed": plan.seed}, lambda: showcase(
            model_dir, data["shapes_val"] / "manifest.jsonl", data["speech_held"], out / "showcase", seed=plan.seed))  # fmt: skip
    finally:
        torch.set_num_threads(previous_threads)

    curves = {name: MetricsLog(out / "model" / name / "metrics.jsonl").rows() for name in MODEL_STAGES}
    metrics = {
        "plan": plan.params(),
        "seconds": {**stage.seconds, "total": round(sum(stage.seconds.values()), 1)},
        "data": {"speech_train_seconds": speech_seconds},
        "vision_tokenizer": _scalars(vision_eval),
        "audio_tokenizer": _scalars(audio_eval),
        "model_training": {name: summaries[name]["losses"] for name in MODEL_STAGES},
        "moe_share_last_window": summaries["pretrain"]["moe_share_last_window"],
        "model_eval": {k: v for k, v in evaluation.items() if k != "examples"},
        "goals": goals(evaluation),
    }
    write_json(out / "metrics.json", metrics)
    tokenizers = {"vision": vision_dir / "tokenizer", "audio": audio_dir / "tokenizer"}
    write_report(out, metrics, curves, shown, tokenizers, data, preset.backbone.n_experts)
    log(
        f"wrote {out / 'report.html'} and {out / 'metrics.json'} ({metrics['seconds']['total'] / 60:.1f} min of stages)"
    )
    return metrics


# The goals for the tiny demo model: (figure, goal, higher is better).
GOALS = (
    ("caption_attribute_accuracy", 0.8, True),
    ("vqa_accuracy", 0.7, True),
    ("geneval_overall", 0.5, True),
    ("asr_wer", 0.25, False),
    ("tts_judge_wer", 0.4, False),
)


def goals(evaluation: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each goal's verdict (`dina.bench.goal`) on the value reached; `met` is None when it is missing."""
    return {name: goal(evaluation.get(name), target, higher_is_better=higher) for name, target, higher in GOALS}
