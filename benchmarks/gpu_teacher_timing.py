"""Teacher forward latency on a CUDA GPU: SmolLM2-135M's architecture and a Llama-3.1-8B-shaped model.

Random weights (no downloads), bf16, ``output_hidden_states=True`` through the decoder (as the
``hf-causal-lm`` teacher runs it), prompts of ~100 tokens, at batch 1 and batch 64, after warm-up,
with CUDA synchronisation around every timed call.  Without a CUDA GPU it prints a message and
exits 0.

    python benchmarks/gpu_teacher_timing.py [--tokens 100] [--repeats 20] [--only smollm2-135m]
"""

from __future__ import annotations

import argparse
import sys
import time

MODELS = {
    # SmolLM2-135M(-Instruct): the default teacher's architecture
    "smollm2-135m": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                         tie_word_embeddings=True, rope_theta=100000.0),
    # Llama-3.1-8B's shape
    "llama-3.1-8b-shape": dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                               num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                               tie_word_embeddings=False, rope_theta=500000.0),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=100, help="prompt length in tokens")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--repeats", type=int, default=20, help="timed calls per (model, batch)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--only", choices=sorted(MODELS), action="append")
    args = ap.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("gpu_teacher_timing: no CUDA GPU available (torch.cuda.is_available() is False); nothing to time.")
        return 0
    from transformers import LlamaConfig, LlamaForCausalLM

    dev = torch.device("cuda")
    name = torch.cuda.get_device_name(dev)
    print(f"GPU: {name}  torch {torch.__version__}  prompt {args.tokens} tokens  bf16  repeats {args.repeats}")
    rows = []
    for model_name in args.only or list(MODELS):
        torch.manual_seed(0)
        cfg = LlamaConfig(**MODELS[model_name])
        with torch.device(dev):
            model = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
        body = model.model
        n_params = sum(p.numel() for p in model.parameters())
        for bs in args.batches:
            ids = torch.randint(0, cfg.vocab_size, (bs, args.tokens), device=dev)
            mask = torch.ones_like(ids)
            with torch.inference_mode():
                for _ in range(args.warmup):
                    body(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
                torch.cuda.synchronize()
                times = []
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    out = body(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
                    torch.cuda.synchronize()
                    times.append(time.perf_counter() - t)
            assert len(out.hidden_states) == cfg.num_hidden_layers + 1
            times.sort()
            p50 = times[len(times) // 2]
            p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]
            rows.append((model_name, n_params, bs, p50 * 1e3, p99 * 1e3, bs / p50))
        del model, body
        torch.cuda.empty_cache()
    print(f"{'model':<20} {'params':>8} {'batch':>5} {'p50 ms':>9} {'p99 ms':>9} {'samples/s':>10}")
    for m, n, bs, p50, p99, thr in rows:
        print(f"{m:<20} {n / 1e9:>7.2f}B {bs:>5} {p50:>9.2f} {p99:>9.2f} {thr:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
