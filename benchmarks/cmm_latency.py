"""CMM decision latency versus the LLM teacher's, batch 1, CPU, in one process.

CMM decision = every student forward (default family set: 3 layer + 3 task + 2 data students)
plus the Hájek-MoE over each task's experts, timed per decision over ``--steps`` consecutive
decision steps (p50 / p99) on the path the pipeline reports
(``cmm_bt_plugins.cmm.incremental.IncrementalCMM``, one compiled call per step: the new step row's
standardisation and compression into the students' window rings, all students, the mixture; weight
export not timed).  For reference, in the same rounds (alternating, ``--rounds``), the whole-window
path ``cmm_bt_plugins.cmm.fast.FastCMM`` (every step of the window recomputed) and, over
``--torch-steps`` decisions, the torch batch-1 path (``StudentSet.predict`` + ``stages.mix_experts``).  Teacher decision = tokenise + forward + pooling of one prompt by the
``hf-causal-lm`` plugin (SmolLM2-135M by default), over ``--teacher-steps`` prompts, timed in the
same rounds (a share of the prompts after each round's CMM decisions), so that both sides of the
ratio see the same machine: on a shared host its speed drifts by up to 1.5x within a minute.
Latency does not depend on the weights, so the students here are freshly initialised (same architectures and
sizes as in training).

Usage::

    .venv/bin/python benchmarks/cmm_latency.py [--student mlp|gru|tcn] [--steps 2000] [--rounds 4] [--no-teacher] [--teacher-plain]

The teacher is timed on its default path (bfloat16, template header's keys / values reused), as a
run's latency stage times it; ``--teacher-plain`` times the float32 path without the prefix cache.

(``gru`` / ``tcn`` students have no incremental path: their reported path is the whole-window one.)

Last line: ``cmm_p50_us=<a> cmm_p99_us=<b> teacher_p50_us=<c> teacher_p99_us=<d> ratio=<c/a>``.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from cmm_bt.hostinfo import describe_host


def build_students(student_name: str, window: int, n_features: int, seed: int = 0):
    import torch

    from cmm_bt_plugins.cmm.ofdd import StudentSet, StudentSpec, TrainedStudent
    from cmm_bt_plugins.cmm.students import STUDENT_CLASSES

    cls = {c.name: c for c in STUDENT_CLASSES}[student_name]
    student = cls(cls.Config())
    c = student.config
    specs = [StudentSpec(f"layer:{i}", "layer", (0, 1, 2), (i,)) for i in range(3)]
    specs += [StudentSpec(f"task:{t}", "task", (t,), (t,)) for t in range(3)]
    specs += [StudentSpec(f"data:{r}", "data", (0, 1, 2), (r,), r) for r in range(2)]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    out = []
    for s in specs:
        net = student.build(window, n_features, len(s.tasks), c.pca_dim).eval()
        out.append(TrainedStudent(s, net, int(sum(p.numel() for p in net.parameters())), rng.normal(size=(c.pca_dim, c.common_dim)) / 4, np.zeros(c.common_dim)))
    return StudentSet(out, np.zeros(n_features, np.float32), np.ones(n_features, np.float32), np.zeros(3), np.ones(3), ["mid", "spread", "volume"], c.common_dim)


def torch_latency(students, moe, X: np.ndarray, steps: int) -> dict[str, float]:
    """The torch batch-1 path (reference only), µs."""
    import time

    import torch

    from cmm_bt_plugins.cmm.stages import mix_experts as mixture

    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = []
        for i in range(steps + 10):
            t0 = time.perf_counter_ns()
            p, e = students.predict(X[i % len(X)][None])
            mixture(students, moe, p, e)
            if i >= 10:
                times.append((time.perf_counter_ns() - t0) / 1e3)
    finally:
        torch.set_num_threads(prev)
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--student", default="mlp", choices=["mlp", "gru", "tcn"])
    ap.add_argument("--steps", type=int, default=2000, help="decisions timed on the reported path (and on the whole-window path)")
    ap.add_argument("--rounds", type=int, default=4, help="alternating rounds of the reported and the whole-window path")
    ap.add_argument("--teacher-steps", type=int, default=20)
    ap.add_argument("--torch-steps", type=int, default=300, help="decisions timed on the torch reference path (0: skip)")
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--levels", type=int, default=5)
    ap.add_argument("--no-teacher", action="store_true")
    ap.add_argument("--model", default=None, help="teacher model (hf-causal-lm `model` param); default: the plugin's")
    ap.add_argument("--teacher-plain", action="store_true",
                    help="time the teacher's plain path (float32, no prefix cache) instead of its default fast path")
    args = ap.parse_args(argv)
    print(f"host: {describe_host()}", flush=True)

    from cmm_bt_plugins.cmm.moe import HajekMoE
    from cmm_bt_plugins.cmm.stages import decision_latency

    n_features = 4 * args.levels + 5
    rng = np.random.default_rng(0)
    # consecutive steps, windows as FeatureSet lays them out: X[i] = rows i .. i + W - 1
    rows = rng.normal(size=(args.steps // args.rounds + args.window + 10, n_features)).astype(np.float32)
    X = np.lib.stride_tricks.sliding_window_view(rows, args.window, axis=0).transpose(0, 2, 1)
    students = build_students(args.student, args.window, n_features)
    moe = HajekMoE(HajekMoE.Config())
    per = max(1, args.steps // args.rounds)
    lm = layout = None
    if not args.no_teacher:
        try:
            from types import SimpleNamespace

            from cmm_bt_plugins.features.market import feature_names
            from cmm_bt_plugins.llm.teacher import HFCausalLMTeacher

            params = {"model": args.model} if args.model else {}
            if args.teacher_plain:
                params.update(dtype="float32", prefix_cache=False)
            lm = HFCausalLMTeacher(HFCausalLMTeacher.Config(**params))
            layout = SimpleNamespace(feature_names=feature_names(args.levels), spec=SimpleNamespace(levels=args.levels))
        except Exception as err:  # noqa: BLE001 - a ratio without a teacher is no result: fail
            print(f"teacher not loaded: {type(err).__name__}: {err}", file=sys.stderr)
            return 1
    parts: dict[str, list[np.ndarray]] = {"cmm": [], "windows": [], "teacher": []}
    path = ""
    # the reported path, the whole-window path and the teacher in turn, round after round, so that a
    # change of the machine's speed during the run (a shared host) reaches both sides of the ratio
    t_per = -(-args.teacher_steps // args.rounds)
    for i in range(args.rounds):
        lat = decision_latency(students, moe, X, per, step_rows=rows)
        path = lat["path"]
        parts["cmm"].append(lat["times"])
        parts["windows"].append(decision_latency(students, moe, X, per)["times"])
        if lm is not None and i * t_per < args.teacher_steps:
            try:
                t = lm.decision_latency_us(X[i * t_per : min((i + 1) * t_per, args.teacher_steps)], layout, warmup=2 if i == 0 else 0)
            except Exception as err:  # noqa: BLE001 - a ratio without a teacher is no result: fail
                print(f"teacher not timed: {type(err).__name__}: {err}", file=sys.stderr)
                return 1
            parts["teacher"].append(np.asarray(t["samples"]))
    stats = {k: {"p50": float(np.percentile(np.concatenate(v), 50)), "p99": float(np.percentile(np.concatenate(v), 99)),
                 "samples": float(sum(len(a) for a in v))} for k, v in parts.items() if v}
    cmm = stats["cmm"]
    result = {"student": args.student, "students": len(students.students), "student_params": students.n_params, "cmm_path": path,
              "cmm_us": cmm, "windows_path_us": stats["windows"]}
    print(f"CMM ({len(students.students)} x {args.student}, {students.n_params} params) + Hajek-MoE, {path} path: p50 {cmm['p50']:.1f} us, "
          f"p99 {cmm['p99']:.1f} us over {int(cmm['samples'])} decisions")
    w = stats["windows"]
    print(f"CMM whole-window path (FastCMM, reference): p50 {w['p50']:.1f} us, p99 {w['p99']:.1f} us over {int(w['samples'])} decisions "
          f"({w['p50'] / cmm['p50']:.1f}x the {path} path's p50)")
    if args.torch_steps:
        ref = torch_latency(students, moe, X, args.torch_steps)
        result["torch_path_us"] = ref
        print(f"CMM torch batch-1 path (reference): p50 {ref['p50']:.0f} us, p99 {ref['p99']:.0f} us over {args.torch_steps} decisions")
    teacher = {"p50": float("nan"), "p99": float("nan")}  # filled in below when the teacher is timed
    if lm is not None:
        teacher = {"p50": stats["teacher"]["p50"], "p99": stats["teacher"]["p99"]}
        result["teacher_us"] = teacher
        ratio = teacher["p50"] / cmm["p50"]
        result["ratio_p50"] = ratio
        how = "plain float32" if args.teacher_plain else f"{lm.config.dtype}, prefix cache {'on' if lm.config.prefix_cache else 'off'}"
        result["teacher_path"] = how
        print(f"teacher ({lm.n_params() / 1e6:.1f}M params, {how}): p50 {teacher['p50']:.0f} us, p99 {teacher['p99']:.0f} us "
              f"over {int(stats['teacher']['samples'])} decisions")
        print(f"teacher / CMM latency ratio (p50): {ratio:.1f}x")
    print(json.dumps(result))
    print(f"cmm_p50_us={cmm['p50']:.1f} cmm_p99_us={cmm['p99']:.1f} teacher_p50_us={teacher['p50']:.1f} teacher_p99_us={teacher['p99']:.1f} ratio={teacher['p50'] / cmm['p50']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
