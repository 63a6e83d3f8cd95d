"""Research: the fastest INT8 CPU path for DistilBERT-base on IMDb, against PyTorch fp32 eager.

Builds a random-weight DistilBertConfig() classifier (distilbert-base-uncased's exact compute) with an
uncased tokenizer (--tokenizer: a folder or Hub id with the 30522-token uncased vocab), exports it to
ONNX, makes graph and quantization variants, and times them on the same seeded sample of real IMDb test
reviews at max length 512, under several batching plans and session options. Every figure goes to a
JSON file; stderr shows progress.

Timing runs are interleaved (round-robin over the candidates, `--repeats` rounds) so that load from other
people on the machine hits every candidate alike; the best round and the median are both kept.

Examples (from the repository root, on an otherwise idle machine):
    python -m research.bench_int8_research --stage screen --samples 128 --tokenizer TOKENIZER --data data/imdb
    python -m research.bench_int8_research --stage final --samples 256 --tokenizer TOKENIZER --data data/imdb
    python -m research.bench_int8_research --stage accuracy --model runs/minilm-2k --samples 2000 --data data/imdb
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np

from imdb_deploy.export.exporters import cls_only_last_layer
from imdb_deploy.folders import load_settings
from imdb_deploy.rows.labelled import load_split, stratified_sample
from imdb_deploy.runtimes.folder import load_tokenizer, load_torch_classifier
from imdb_deploy.tokenization import TokenizationSettings, encode, length_sorted_batches, pad
from imdb_deploy.training.architectures import save_random_classifier, useful_macs


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------
# Model and ONNX variants
# ---------------------------------------------------------------------------------------------------------


def build_random_base(folder: Path, tokenizer: str) -> Path:
    """DistilBertConfig() classifier with seeded random weights plus the uncased tokenizer (built once)."""
    if not (folder / "config.json").is_file():
        save_random_classifier("distilbert-base", folder, tokenizer=tokenizer, seed=0)
    return folder


def export_fp32(model_dir: Path, out: Path) -> Path:
    if (out / "model.onnx").is_file():
        return out / "model.onnx"
    from optimum.exporters.onnx import main_export

    main_export(str(model_dir), output=str(out), task="text-classification", opset=17, do_validation=False)
    return out / "model.onnx"


def export_cls_only(model_dir: Path, out: Path) -> Path:
    """optimum export of the classifier whose last layer computes only the [CLS] position."""
    path = out / "model_cls_only.onnx"
    if path.is_file():
        return path
    from optimum.exporters.onnx import onnx_export_from_model

    model = load_torch_classifier(model_dir)
    cls_only_last_layer(model)  # what `imdb-deploy export` does by default
    tmp = out / "cls_export"
    onnx_export_from_model(model, tmp, task="text-classification", opset=17, do_validation=False)
    (tmp / "model.onnx").rename(path)
    return path


def ort_optimize(src: Path, dst: Path, num_heads: int, hidden: int, multi_head: bool = False) -> Path:
    """onnxruntime.transformers.optimizer fusions (Attention, SkipLayerNorm, BiasGelu, EmbedLayerNorm).

    multi_head: fuse attention into MultiHeadAttention (Q, K, V projections stay separate MatMuls, which
    dynamic INT8 then quantizes) instead of Attention (which it turns into QAttention).
    """
    if dst.is_file():
        return dst
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.use_multi_head_attention = multi_head
    model = optimize_model(
        str(src), model_type="bert", num_heads=num_heads, hidden_size=hidden, opt_level=0, optimization_options=options
    )
    log(f"  fused ops in {dst.name}: {model.get_fused_operator_statistics()}")
    model.save_model_to_file(str(dst))
    return dst


def optimum_optimize(src_dir: Path, dst_dir: Path, level: int) -> Path:
    """optimum's ORTOptimizer at an optimization level (what an optimum user gets)."""
    path = dst_dir / "model_optimized.onnx"
    if path.is_file():
        return path
    from optimum.onnxruntime import ORTOptimizer
    from optimum.onnxruntime.configuration import OptimizationConfig

    optimizer = ORTOptimizer.from_pretrained(str(src_dir), file_names=["model.onnx"])
    optimizer.optimize(OptimizationConfig(optimization_level=level), save_dir=str(dst_dir))
    return path


def quantize_dyn(src: Path, dst: Path, **options) -> Path:
    """onnxruntime quantize_dynamic; DefaultTensorType lets it quantize fused graphs with unknown types."""
    if dst.is_file():
        return dst
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT, **options.pop("extra", {})}
    weight_type = QuantType[options.pop("weight_type", "QInt8")]
    if weight_type == QuantType.QUInt8:  # as optimum's AutoQuantizationConfig.avx2 (and so export) sets it
        extra.setdefault("WeightSymmetric", True)
        extra.setdefault("ActivationSymmetric", False)
    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=weight_type,
        per_channel=options.pop("per_channel", False),
        reduce_range=options.pop("reduce_range", False),
        op_types_to_quantize=options.pop("ops", None),
        extra_options=extra,
    )
    assert not options, options
    return dst


class _Reader:
    def __init__(self, feeds):
        self.feeds = iter(feeds)

    def get_next(self):
        return next(self.feeds, None)


def quantize_stat(src: Path, dst: Path, calib_feeds, qdq: bool, per_channel: bool) -> Path:
    """Static INT8 (activations calibrated on IMDb train reviews), QDQ or QOperator format."""
    if dst.is_file():
        return dst
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    quantize_static(
        str(src),
        str(dst),
        _Reader(calib_feeds),
        quant_format=QuantFormat.QDQ if qdq else QuantFormat.QOperator,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
        op_types_to_quantize=["MatMul"],
        extra_options={"MatMulConstBOnly": True},
    )
    return dst


def op_histogram(path: Path) -> dict[str, int]:
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


# ---------------------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------------------


def plan_batches(lengths, plan: str) -> list[list[int]]:
    """Batches for a plan: "order32" (input order), "sorted32", "tokens8192" (sorted, token budget), "one"."""
    n = len(lengths)
    if plan.startswith("order"):
        size = int(plan[5:])
        return [list(range(i, min(i + size, n))) for i in range(0, n, size)]
    if plan.startswith("sorted"):
        return length_sorted_batches(lengths, int(plan[6:]))
    if plan.startswith("tokens"):
        return length_sorted_batches(lengths, 512, int(plan[6:]))
    if plan == "one":
        return [[i] for i in range(n)]
    raise ValueError(plan)


def session(path: Path, threads: int = 2, spin: bool = True, level: str = "all", dynamic_block: int = 0):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    }[level]
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if dynamic_block:
        options.add_session_config_entry("session.dynamic_block_base", str(dynamic_block))
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


class OnnxRunner:
    """Runs one ONNX file over pre-tokenized reviews under a batching plan; `parallel` sessions split batches."""

    def __init__(self, path: Path, pad_id: int, parallel: int = 1, **session_options):
        self.sessions = [session(path, **session_options) for _ in range(parallel)]
        self.pad_id = pad_id
        self.names = [i.name for i in self.sessions[0].get_inputs()]

    def run(self, encoded, batches) -> np.ndarray:
        out = np.zeros((len(encoded), 2), dtype=np.float32)

        def work(sess, my_batches):
            for batch in my_batches:
                feed = pad([encoded[i] for i in batch], self.pad_id)
                out[batch] = sess.run(["logits"], {k: feed[k] for k in self.names})[0]

        if len(self.sessions) == 1:
            work(self.sessions[0], batches)
        else:  # greedy split of batches by padded tokens, one Python thread per 1-thread session
            loads = [0] * len(self.sessions)
            shares: list[list] = [[] for _ in self.sessions]
            for batch in sorted(batches, key=lambda b: -len(b) * max(len(encoded[i]) for i in b)):
                k = loads.index(min(loads))
                shares[k].append(batch)
                loads[k] += len(batch) * max(len(encoded[i]) for i in batch)
            threads = [threading.Thread(target=work, args=(s, b)) for s, b in zip(self.sessions, shares, strict=True)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        return out


class TorchRunner:
    """PyTorch eager; `int8` applies torch's dynamic quantization to every nn.Linear (FBGEMM/x86 kernels)."""

    def __init__(self, model_dir: Path, threads: int = 2, int8: bool = False, cls_only: bool = False):
        import torch

        torch.set_num_threads(threads)
        self.model = load_torch_classifier(model_dir)
        if cls_only:
            cls_only_last_layer(self.model)
        if int8:
            self.model = torch.ao.quantization.quantize_dynamic(self.model, {torch.nn.Linear}, dtype=torch.qint8)
        self.pad_id = 0

    def run(self, encoded, batches) -> np.ndarray:
        import torch

        out = np.zeros((len(encoded), 2), dtype=np.float32)
        with torch.inference_mode():
            for batch in batches:
                feed = {k: torch.from_numpy(v) for k, v in pad([encoded[i] for i in batch], self.pad_id).items()}
                out[batch] = self.model(**feed).logits.numpy()
        return out


def time_candidates(candidates: dict, encoded, repeats: int, warmup_reviews: int = 16) -> dict:
    """Interleaved timing: every round runs every candidate once over all reviews.

    A candidate is (factory, plan); the runner is built fresh for each round and dropped after it, so only
    one model's sessions and memory arenas live at a time (a dozen base-size sessions with their arenas
    fill 24 GB and the machine slows to a crawl). Building and a short warm-up are not timed.
    """
    import gc

    lengths = [len(e) for e in encoded]
    order = sorted(range(len(encoded)), key=lambda i: lengths[i])
    few = order[: warmup_reviews // 2] + order[-warmup_reviews // 2 :]  # shortest and longest reviews
    times: dict[str, list[float]] = {name: [] for name in candidates}
    logits: dict[str, np.ndarray] = {}
    for r in range(repeats):
        for name, (make, plan) in candidates.items():
            runner = make()
            runner.run([encoded[i] for i in few], plan_batches([lengths[i] for i in few], plan))
            batches = plan_batches(lengths, plan)
            start = time.perf_counter()
            logits[name] = runner.run(encoded, batches)
            times[name].append(time.perf_counter() - start)
            del runner
            gc.collect()
            log(f"  round {r + 1}/{repeats} {name:40s} {len(encoded) / times[name][-1]:7.2f} reviews/s")
    return {
        name: {
            "plan": candidates[name][1],
            "seconds": t,
            "reviews_per_s_best": len(encoded) / min(t),
            "reviews_per_s_median": len(encoded) / statistics.median(t),
            "logits": logits[name],
        }
        for name, t in times.items()
    }


def padded_tokens(lengths, batches) -> int:
    return int(sum(len(b) * max(lengths[i] for i in b) for b in batches))


# ---------------------------------------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------------------------------------


def prepare_variants(work: Path, base: Path, calib_encoded, pad_id: int, which: set[str] | None) -> dict[str, Path]:
    onnx_dir = work / "onnx"
    fp32 = export_fp32(base, onnx_dir)
    v: dict[str, Path] = {"fp32": fp32}
    v["ortopt"] = ort_optimize(fp32, onnx_dir / "ortopt.onnx", 12, 768)
    recipes = {
        "q_fp32": (fp32, {}),
        "q_fp32_pc": (fp32, {"per_channel": True}),
        "q_opt": (v["ortopt"], {}),
        "q_opt_rr": (v["ortopt"], {"reduce_range": True}),
        "q_opt_pc": (v["ortopt"], {"per_channel": True}),
        "q_opt_pc_rr": (v["ortopt"], {"per_channel": True, "reduce_range": True}),
        "q_opt_pc_u8": (v["ortopt"], {"per_channel": True, "weight_type": "QUInt8"}),
        "q_opt_matmul": (v["ortopt"], {"ops": ["MatMul"]}),
        "q_opt_attn": (v["ortopt"], {"ops": ["MatMul", "Attention"]}),
        "q_opt_gather": (v["ortopt"], {"ops": ["MatMul", "Attention", "Gather", "EmbedLayerNormalization"]}),
    }
    for name, (src, options) in recipes.items():
        if which is None or name in which:
            v[name] = quantize_dyn(src, onnx_dir / f"{name}.onnx", **options)
    if which is None or {"cls_opt", "q_cls_opt", "q_cls_opt_pc"} & which:
        cls = export_cls_only(base, onnx_dir)
        v["cls_opt"] = ort_optimize(cls, onnx_dir / "cls_opt.onnx", 12, 768)
        v["q_cls_opt"] = quantize_dyn(v["cls_opt"], onnx_dir / "q_cls_opt.onnx")
        v["q_cls_opt_pc"] = quantize_dyn(v["cls_opt"], onnx_dir / "q_cls_opt_pc.onnx", per_channel=True)
    if which is None or "q_cls_mha_pc" in which:
        cls = export_cls_only(base, onnx_dir)
        mha = ort_optimize(cls, onnx_dir / "cls_mha.onnx", 12, 768, multi_head=True)
        v["q_cls_mha_pc"] = quantize_dyn(mha, onnx_dir / "q_cls_mha_pc.onnx", per_channel=True)
    if which is None or {"s_qdq", "s_qop"} & which:
        # Static quantization needs a graph whose MatMuls have float inputs: quantize the unfused graph's
        # pre-processed copy (shape inference) and let the session fuse what it can.
        feeds = []
        for i in range(0, len(calib_encoded), 8):
            arrays = pad(calib_encoded[i : i + 8], pad_id)
            feeds.append(arrays)
        pre = onnx_dir / "fp32_pre.onnx"
        if not pre.is_file():  # symbolic shape inference fails on this graph; ONNX shape inference suffices
            from onnxruntime.quantization.shape_inference import quant_pre_process

            quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        v["s_qdq"] = quantize_stat(pre, onnx_dir / "s_qdq.onnx", feeds, qdq=True, per_channel=False)
        v["s_qop"] = quantize_stat(pre, onnx_dir / "s_qop.onnx", list(feeds), qdq=False, per_channel=False)
    if which is not None:
        v = {k: p for k, p in v.items() if k in which}
    return v


def load_reviews(source: str, samples: int, seed: int, tokenizer, settings):
    data = stratified_sample(load_split(source, "test"), samples, seed)
    start = time.perf_counter()
    encoded = encode(tokenizer, data.texts, settings)
    return data, encoded, time.perf_counter() - start


def agreement(a: np.ndarray, b: np.ndarray) -> dict:
    pa = np.exp(a - a.max(1, keepdims=True))
    pa /= pa.sum(1, keepdims=True)
    pb = np.exp(b - b.max(1, keepdims=True))
    pb /= pb.sum(1, keepdims=True)
    return {
        "label_agreement": float((a.argmax(1) == b.argmax(1)).mean()),
        "max_abs_prob_diff": float(np.abs(pa - pb).max()),
        "mean_abs_logit_diff": float(np.abs(a - b).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--stage", choices=["screen", "sessions", "plans", "final", "accuracy", "profile"], required=True
    )
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data", default="imdb", help="labelled reviews (see imdb-deploy train --help)")
    parser.add_argument(
        "--tokenizer", default="distilbert-base-uncased", help="uncased tokenizer for the random-weight model"
    )
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "imdb-bench-research")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_research"))
    parser.add_argument("--only", default="", help="comma-separated candidate names")
    parser.add_argument("--model", type=Path, default=None, help="fine-tuned folder for --stage accuracy")
    parser.add_argument(
        "--plans",
        default="order32,sorted32,sorted64,tokens4096,tokens8192,tokens16384,one",
        help="batching plans for --stage plans: orderN, sortedN, tokensN (sorted, token budget), one",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    only = {x for x in args.only.split(",") if x} or None

    settings = TokenizationSettings(max_length=512, truncation="head")
    if args.stage == "accuracy":
        run_accuracy(args, only)
        return
    base = build_random_base(args.work / "distilbert-base-random", args.tokenizer)
    tokenizer = load_tokenizer(base)
    data, encoded, tokenize_s = load_reviews(args.data, args.samples, args.seed, tokenizer, settings)
    lengths = [len(e) for e in encoded]
    log(f"{len(encoded)} reviews, {sum(lengths)} tokens (mean {np.mean(lengths):.1f}), tokenize {tokenize_s:.2f}s")
    calib = encode(tokenizer, stratified_sample(load_split(args.data, "train"), 64, 7).texts, settings)
    pad_id = tokenizer.pad_token_id

    if args.stage == "profile":
        run_profile(args, only or {"q_opt", "q_opt_pc", "q_opt_pc_u8", "ortopt"}, base, calib, encoded, pad_id)
        return

    candidates: dict = {}
    if args.stage == "screen":
        variants = prepare_variants(args.work, base, calib, pad_id, only)
        for name, path in variants.items():
            candidates[f"{name}/sorted32"] = (partial(OnnxRunner, path, pad_id), "sorted32")
        if only is None or "torch" in only:
            candidates["torch/sorted32"] = (partial(TorchRunner, base), "sorted32")
        if only is None or "torch_int8" in only:
            candidates["torch_int8/sorted32"] = (partial(TorchRunner, base, int8=True), "sorted32")
        if only is None or "torch_int8_cls" in only:
            candidates["torch_int8_cls/sorted32"] = (partial(TorchRunner, base, int8=True, cls_only=True), "sorted32")
    elif args.stage == "sessions":
        name = "q_opt_pc"  # what `imdb-deploy export --quantize` writes by default on this CPU
        path = prepare_variants(args.work, base, calib, pad_id, {name})[name]
        configs = {
            "t2_spin": {},
            "t2_nospin": {"spin": False},
            "t2_block4": {"dynamic_block": 4},
            "t2_extended": {"level": "extended"},
            "t1": {"threads": 1},
            "2x_t1": {"threads": 1, "parallel": 2},
        }
        for config, options in configs.items():
            if only is None or config in only:
                options = dict(options)
                parallel = options.pop("parallel", 1)
                candidates[f"{name}/{config}"] = (
                    partial(OnnxRunner, path, pad_id, parallel=parallel, **options),
                    "sorted32",
                )
    elif args.stage == "plans":
        name = next(iter(only)) if only else "q_opt"
        path = prepare_variants(args.work, base, calib, pad_id, {name})[name]
        runner = partial(OnnxRunner, path, pad_id)
        for plan in args.plans.split(","):
            candidates[f"{name}/{plan}"] = (runner, plan)
    elif args.stage == "final":
        names = only or {"fp32", "ortopt", "q_opt", "q_cls_opt"}
        variants = prepare_variants(args.work, base, calib, pad_id, names)
        torch_runner = partial(TorchRunner, base)
        candidates["torch/order32"] = (torch_runner, "order32")
        candidates["torch/sorted32"] = (torch_runner, "sorted32")
        for name, path in variants.items():
            runner = partial(OnnxRunner, path, pad_id)
            candidates[f"{name}/order32"] = (runner, "order32")
            candidates[f"{name}/tokens1024"] = (runner, "tokens1024")  # predict's default budget

    results = time_candidates(candidates, encoded, args.repeats)
    reference = next((r["logits"] for k, r in results.items() if k.startswith("torch/")), None)
    from transformers import AutoConfig

    macs = useful_macs(AutoConfig.from_pretrained(base), lengths)
    report = {
        "stage": args.stage,
        "samples": len(encoded),
        "tokens": int(sum(lengths)),
        "mean_tokens": float(np.mean(lengths)),
        "tokenize_seconds": tokenize_s,
        "useful_macs": macs,
        "candidates": {},
    }
    for name, r in results.items():
        entry = {k: v for k, v in r.items() if k != "logits"}
        entry["padded_tokens"] = padded_tokens(lengths, plan_batches(lengths, r["plan"]))
        entry["useful_gmacs_per_s"] = macs["total"] * entry["reviews_per_s_best"] / len(encoded) / 1e9
        if reference is not None:
            entry["vs_torch"] = agreement(reference, r["logits"])
        variant = name.split("/")[0]
        path = args.work / "onnx" / ("model.onnx" if variant == "fp32" else f"{variant}.onnx")
        if path.is_file():
            entry["file_mb"] = path.stat().st_size / 1e6
            entry["ops"] = op_histogram(path)
        report["candidates"][name] = entry
    out = args.out / f"{args.stage}.json"
    out.write_text(json.dumps(report, indent=2))
    log(f"wrote {out}")
    for name, e in sorted(report["candidates"].items(), key=lambda kv: -kv[1]["reviews_per_s_best"]):
        log(
            f"{name:40s} best {e['reviews_per_s_best']:7.2f}  median {e['reviews_per_s_median']:7.2f}  "
            f"{e['useful_gmacs_per_s']:6.1f} GMAC/s  {e.get('vs_torch', '')}"
        )


def run_profile(args, names, base, calib, encoded, pad_id) -> None:
    """Where the time goes: onnxruntime's profiler, summed per operator type, over all reviews (sorted32)."""
    import onnxruntime as ort

    report = {}
    lengths = [len(e) for e in encoded]
    for name, path in prepare_variants(args.work, base, calib, pad_id, set(names)).items():
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        options.enable_profiling = True
        options.profile_file_prefix = str(args.out / f"ort-profile-{name}")
        sess = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        names_in = [i.name for i in sess.get_inputs()]
        start = time.perf_counter()
        for batch in plan_batches(lengths, "sorted32"):
            feed = pad([encoded[i] for i in batch], pad_id)
            sess.run(None, {k: feed[k] for k in names_in})
        wall = time.perf_counter() - start
        trace = json.loads(Path(sess.end_profiling()).read_text())
        per_op: dict[str, float] = {}
        for event in trace:
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                op = event["args"]["op_name"]
                per_op[op] = per_op.get(op, 0.0) + event["dur"] / 1e6
        total = sum(per_op.values())
        report[name] = {
            "wall_seconds": wall,
            "reviews_per_s": len(encoded) / wall,
            "op_seconds": dict(sorted(per_op.items(), key=lambda kv: -kv[1])),
            "op_share": {op: t / total for op, t in sorted(per_op.items(), key=lambda kv: -kv[1])},
        }
        log(
            name,
            f"{len(encoded) / wall:.2f} reviews/s",
            {op: round(t, 2) for op, t in report[name]["op_seconds"].items()},
        )
    (args.out / "profile.json").write_text(json.dumps(report, indent=2))


def run_accuracy(args, only) -> None:
    """Accuracy and agreement of the quantization recipes on a fine-tuned model (args.model)."""
    model_dir = args.model
    tokenizer = load_tokenizer(model_dir)
    settings = load_settings(model_dir, tokenizer)
    data, encoded, _ = load_reviews(args.data, args.samples, args.seed, tokenizer, settings)
    config = json.loads((model_dir / "config.json").read_text())
    heads, dim = config["n_heads"], config["dim"]
    work = args.work / ("acc-" + model_dir.name)
    onnx_dir = work / "onnx"
    fp32 = export_fp32(model_dir, onnx_dir)
    opt = ort_optimize(fp32, onnx_dir / "ortopt.onnx", heads, dim)
    recipes = {
        "q_fp32": (fp32, {}),
        "q_fp32_pc": (fp32, {"per_channel": True}),
        "q_opt": (opt, {}),
        "q_opt_rr": (opt, {"reduce_range": True}),
        "q_opt_pc": (opt, {"per_channel": True}),
        "q_opt_pc_rr": (opt, {"per_channel": True, "reduce_range": True}),
        "q_opt_pc_u8": (opt, {"per_channel": True, "weight_type": "QUInt8"}),
        "q_opt_attn": (opt, {"ops": ["MatMul", "Attention"]}),
    }
    paths = {"fp32": fp32, "ortopt": opt}
    for name, (src, options) in recipes.items():
        if only is None or name in only:
            paths[name] = quantize_dyn(src, onnx_dir / f"{name}.onnx", **options)
    lengths = [len(e) for e in encoded]
    batches = plan_batches(lengths, "tokens8192")
    torch_logits = TorchRunner(model_dir).run(encoded, batches)
    labels = np.asarray(data.labels)
    report = {
        "model": str(model_dir),
        "samples": len(encoded),
        "torch_accuracy": float((torch_logits.argmax(1) == labels).mean()),
    }
    for name, path in paths.items():
        start = time.perf_counter()
        logits = OnnxRunner(path, tokenizer.pad_token_id).run(encoded, batches)
        report[name] = {
            "accuracy": float((logits.argmax(1) == labels).mean()),
            "seconds": time.perf_counter() - start,
            **agreement(torch_logits, logits),
        }
        log(name, report[name])
    out = args.out / f"accuracy-{model_dir.name}.json"
    out.write_text(json.dumps(report, indent=2))
    log(f"wrote {out}  torch accuracy {report['torch_accuracy']:.4f}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
