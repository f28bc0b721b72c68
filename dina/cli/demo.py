"""`dina demo`: what `make demo` runs (see `dina.demo`)."""

from __future__ import annotations


def register(sub) -> None:
    from dina.cli.args import positive_int, seed_int

    p = sub.add_parser("demo", help="run the main job end to end and write runs/demo/report.html")
    p.add_argument("--out", help="output directory, stages reused on re-runs (default runs/demo, or runs/demo-quick)")
    p.add_argument("--quick", action="store_true", help="a small smoke-test run (CI), no quality bar")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--threads", type=positive_int, default=2, help="torch threads (default 2)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    import dataclasses

    from dina.demo import DemoPlan, run_demo

    plan = DemoPlan.quick() if args.quick else DemoPlan()
    out = args.out or ("runs/demo-quick" if args.quick else "runs/demo")
    run_demo(out, dataclasses.replace(plan, seed=args.seed, threads=args.threads))
    return 0
