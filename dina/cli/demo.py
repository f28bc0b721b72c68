"""`dina demo`: what `make demo` runs (see `dina.demo`)."""

from __future__ import annotations


def register(sub) -> None:
    from dina.cli.args import seed_int

    p = sub.add_parser("demo", help="run the main job end to end and write runs/demo/report.html")
    p.add_argument("--out", default="runs/demo", help="output directory (stages are reused on re-runs)")
    p.add_argument("--quick", action="store_true", help="a small smoke-test run (CI), no quality bar")
    p.add_argument("--seed", type=seed_int, default=0)
    p.set_defaults(func=_run)


def _run(args) -> int:
    import dataclasses

    from dina.demo import DemoPlan, run_demo

    plan = DemoPlan.quick() if args.quick else DemoPlan()
    run_demo(args.out, dataclasses.replace(plan, seed=args.seed))
    return 0
