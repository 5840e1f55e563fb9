"""Teacher feature extraction: the plain fp32 path against the fast path, same prompts, one run.

    .venv/bin/python benchmarks/teacher_throughput.py [--dataset cffex-if] [--samples 200] [--dtype bfloat16]
    .venv/bin/python benchmarks/teacher_throughput.py --device cuda --batch-size 256 --samples 10000

The teacher is the ``teacher`` section of ``--strategy`` (default ``strategies/llm-teacher.yaml``:
SmolLM2-135M, 4-step prompts, all 31 layers, last-token pooling, ridge heads on the best layer).
Windows: the dataset's train and validation splits on the strategy's decision grid (engine section
over the manifest's defaults), ``--samples`` rows per split with valid targets, evenly thinned.

* **plain**: ``dtype: float32, prefix_cache: false, length_buckets: false`` on CPU (the path before
  the fast options existed);
* **fast**: ``dtype: --dtype`` (default bfloat16), ``prefix_cache: true`` (the template header's
  keys / values computed once and reused), ``length_buckets: true`` (each chunk sorted by token
  length before batching), on ``--device``.

Both run :meth:`Teacher.extract` (the pipeline's extraction) in blocks of ``--block`` samples,
alternating plain / fast block by block, so machine load hits both alike; model loading and one
warm-up batch each are not timed.  Wall time is what the last line reports; the process CPU time
is printed too (on a machine shared with other jobs it varies less than the wall time).  Then the ridge heads of the strategy are fitted on each path's
train features (alpha and layer chosen on validation) and scored on validation.

Last line: ``samples=<n> plain_samples_per_s=<x> fast_samples_per_s=<y> speedup=<y/x>
max_rel_diff=<d> head_mae_rel_change=<q>``: ``n`` samples per path (train + validation), ``d`` the
largest ``‖h_fast − h_plain‖ / ‖h_plain‖`` over samples and layers, ``q`` the validation MAE change
``(MAE_fast − MAE_plain) / MAE_plain`` of the heads, averaged over the three tasks.  ``--no-plain``
skips the plain path (throughput of the fast path only, e.g. on a GPU for 10,000 samples per split;
``speedup``, ``d`` and ``q`` are then ``nan``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from cmm_bt.hostinfo import describe_host

ROOT = Path(__file__).resolve().parent.parent


def feature_sets(dataset: str, data_root: str | None, strategy: dict, spec):
    """Train and validation FeatureSets of ``dataset`` on the strategy's decision grid."""
    from cmm_bt.data.loading import load_market
    from cmm_bt.data.manifest import compute_splits, load_manifest, resolve_data_root
    from cmm_bt.engine.config import EngineConfig
    from cmm_bt.engine.loop import decision_grid
    from cmm_bt.plugins import Hooks, build_plugin_manager

    from cmm_bt_plugins.features.market import build_feature_set

    registry = Hooks(build_plugin_manager()).build_registry()
    manifest = load_manifest(dataset)
    market = load_market(manifest, resolve_data_root(data_root), registry)
    engine = EngineConfig(**{**dict(manifest.engine_defaults), **strategy.get("engine", {})})
    splits = compute_splits(manifest, market.start_ns, market.end_ns)
    out = {}
    for split in ("train", "validation"):
        times, eps = decision_grid(market, engine, *splits[split])
        out[split] = build_feature_set(market, times, spec, eps)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strategy", default=str(ROOT / "strategies" / "llm-teacher.yaml"))
    ap.add_argument("--dataset", default="cffex-if")
    ap.add_argument("--data-root", default=None, help="default: CMM_BT_DATA_ROOT, else datasets/")
    ap.add_argument("--samples", type=int, default=200, help="samples per split (train, validation)")
    ap.add_argument("--block", type=int, default=64, help="samples per alternating block")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the strategy's")
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-plain", action="store_true", help="time the fast path only")
    a = ap.parse_args(argv)
    print(f"host: {describe_host()}", flush=True)

    from cmm_bt_plugins.features.quality import prediction_quality
    from cmm_bt_plugins.llm.heads import HeadsConfig, TeacherHeads
    from cmm_bt_plugins.llm.stages import select_indices
    from cmm_bt_plugins.llm.teacher import HFCausalLMTeacher
    from cmm_bt_plugins.models.signals import TASKS

    strategy = yaml.safe_load(Path(a.strategy).read_text())
    params = dict(strategy["teacher"]["params"])
    heads_cfg = HeadsConfig(**params.pop("heads", {}))
    params["batch_size"] = a.batch_size or params.get("batch_size", 16)
    params["threads"] = a.threads
    plain = HFCausalLMTeacher(HFCausalLMTeacher.Config(**{**params, "dtype": "float32", "device": "cpu", "prefix_cache": False, "length_buckets": False}))
    fast = HFCausalLMTeacher(HFCausalLMTeacher.Config(**{**params, "dtype": a.dtype, "device": a.device, "prefix_cache": True, "length_buckets": True}))

    t = time.perf_counter()
    fsets = feature_sets(a.dataset, a.data_root, strategy, fast.config.inputs)
    rows = {s: select_indices(fs, 1, a.samples, require_targets=True) for s, fs in fsets.items()}
    print(f"{a.dataset}: {', '.join(f'{s} {len(r)} of {len(fsets[s])} rows' for s, r in rows.items())} "
          f"({time.perf_counter() - t:.1f} s, not timed)")
    paths = {"fast": fast} if a.no_plain else {"plain": plain, "fast": fast}
    for name, teacher in paths.items():
        t = time.perf_counter()
        teacher.load()
        fs = fsets["train"]
        teacher.hidden_states(fs.X[rows["train"][: teacher.config.batch_size]], fs)  # warm-up
        print(f"{name}: dtype {teacher.config.dtype}, device {teacher.config.device}, prefix_cache {teacher.config.prefix_cache}, "
              f"length_buckets {teacher.config.length_buckets}, batch {teacher.config.batch_size}; load + warm-up "
              f"{time.perf_counter() - t:.1f} s (not timed)")

    feats = {name: {} for name in paths}
    wall = {name: 0.0 for name in paths}
    cpu = {name: 0.0 for name in paths}
    with tempfile.TemporaryDirectory(prefix="teacher-throughput-") as tmp:
        for split, idx in rows.items():
            fs = fsets[split]
            parts = {name: [] for name in paths}
            for b, lo in enumerate(range(0, len(idx), a.block)):
                block = idx[lo : lo + a.block]
                for name, teacher in paths.items():
                    t, c = time.perf_counter(), time.process_time()
                    lf = teacher.extract(fs, Path(tmp) / name / split / f"{b:05d}", block, progress=False)
                    parts[name].append(np.stack([np.asarray(lf.layer(l)) for l in lf.layers], 1))  # [n, L+1, hidden]
                    wall[name] += time.perf_counter() - t
                    cpu[name] += time.process_time() - c
            for name in paths:
                feats[name][split] = np.concatenate(parts[name])
    n = sum(len(r) for r in rows.values())
    rate = {name: n / wall[name] for name in paths}
    for name in paths:
        print(f"{name}: {n} samples in {wall[name]:.1f} s = {rate[name]:.2f} samples/s "
              f"(process CPU time {cpu[name]:.1f} s = {n / cpu[name]:.2f} samples per CPU-second)")
    if len(paths) == 2:
        print(f"CPU-time speedup {cpu['plain'] / cpu['fast']:.3f} (less sensitive to other processes than the wall-clock speedup)")

    if a.no_plain:
        print(f"samples={n} plain_samples_per_s=nan fast_samples_per_s={rate['fast']:.3f} speedup=nan max_rel_diff=nan head_mae_rel_change=nan")
        return 0

    hp, hf = (np.concatenate([feats[p][s] for s in rows]) for p in ("plain", "fast"))
    rel = np.linalg.norm(hf - hp, axis=-1) / np.maximum(np.linalg.norm(hp, axis=-1), 1e-30)
    layers = fast.layers()
    print("relative hidden-state difference by layer (max / median): "
          + ", ".join(f"{l}: {rel[:, i].max():.4f}/{np.median(rel[:, i]):.4f}" for i, l in enumerate(layers) if i % 5 == 0 or i == len(layers) - 1))

    from cmm_bt_plugins.llm.feature_cache import LayerFeatures

    y = {s: fsets[s].y()[rows[s]] for s in rows}
    mae = {}
    for name in ("plain", "fast"):
        lf = {s: LayerFeatures(rows[s], layers, {l: feats[name][s][:, i] for i, l in enumerate(layers)}) for s in rows}
        heads = TeacherHeads(heads_cfg).fit(lf["train"], y["train"], lf["validation"], y["validation"])
        pred = heads.predict(lf["validation"])
        mae[name] = [prediction_quality(y["validation"][:, t], pred[task].to_numpy(), task)["mae"] for t, task in enumerate(TASKS)]
        summ = heads.summary()
        print(f"{name} heads: " + "; ".join(f"{r.task} layer {r.layers} alpha {r.alpha:g} val R2 {r.val_r2:.4f} MAE {m:.5f}"
                                           for r, m in zip(summ.itertuples(index=False), mae[name])))
    change = [(f - p) / p for p, f in zip(mae["plain"], mae["fast"])]
    print("validation MAE change by task: " + ", ".join(f"{task} {c:+.4f}" for task, c in zip(TASKS, change)))
    q = float(np.mean(change))
    print(f"samples={n} plain_samples_per_s={rate['plain']:.3f} fast_samples_per_s={rate['fast']:.3f} "
          f"speedup={rate['fast'] / rate['plain']:.3f} max_rel_diff={rel.max():.4g} head_mae_rel_change={q:+.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
