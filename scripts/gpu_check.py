"""Device check: bf16 training and PyTorch inference speed of distilbert-base on real IMDb reviews.

Two commands:

    prepare   (here: --source data, --tokenizer) writes .gpu_data/: a stratified sample of real reviews as
              train/test Parquet plus the uncased tokenizer, small enough to travel to the GPU machine.
    measure   (there) times, with distilbert-base-uncased's architecture (`DistilBertConfig()`, random weights,
              which time exactly as the pretrained ones):
              - training through accelerate with mixed_precision="bf16", batch 16, max length 512, head+tail
                truncation, length-grouped batches, AdamW + linear schedule: the loop `imdb-deploy train` runs;
              - the seed's full recipe (25,000 reviews, 2 epochs, batch 16) extrapolated from that rate;
              - inference (batch 64, length-sorted, max length 512) in fp32, fp32 with TF32, bf16 autocast and
                bf16 weights, plus bf16 autocast on unsorted batches (what train's evaluation does).
              `--smoke` shrinks everything (tiny model, length 64, a few steps) to check the logic on a CPU.

Every figure, the GPU, driver, library versions and date go into one JSON file, rewritten after each section,
so a failure or a time limit still leaves the figures measured so far and the error. scripts/gpu_check.sh is
the entry point on the GPU machine; its header holds the exact device call.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import traceback
from contextlib import nullcontext, suppress
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the GPU machine runs the working tree, not an installed package

from imdb_deploy.fileio import write_json_atomic  # noqa: E402
from imdb_deploy.machine import logical_cpus, versions  # noqa: E402
from imdb_deploy.outputs import Output  # noqa: E402
from imdb_deploy.training.architectures import TINY, random_classifier, useful_macs  # noqa: E402

SCHEMA = "imdb-deploy/gpu-check/1"
SECTIONS = ("setup", "train_bf16", "inference", "full_recipe")
# The stack whose versions the JSON records (the GPU image's own, or the carried wheels).
PACKAGES = ("torch", "transformers", "accelerate", "tokenizers", "huggingface_hub", "numpy", "pandas")
# The seed's recipe, and what `imdb-deploy train` does by default around it (TrainConfig defaults).
RECIPE = {"train_reviews": 25_000, "test_reviews": 25_000, "epochs": 2, "batch_size": 16, "val_size": 0.1}
TRAIN_LR, WARMUP_RATIO, WEIGHT_DECAY = 2e-5, 0.06, 0.01


@dataclass(frozen=True)
class Profile:
    """Sizes of one run. FULL is sized for one H200 in well under 8 minutes; SMOKE for a CPU in seconds.

    Attributes:
        tiny_model: a 2-layer, 32-dim DistilBERT instead of `DistilBertConfig()` (distilbert-base).
        max_length: tokens per review; 512 is what `imdb-deploy train` uses.
        batch_size: training batch (the recipe's 16).
        train_reviews: reviews of the carried train sample used (None: all); one epoch over them is timed twice.
        warmup_steps: untimed steps first (kernel selection, allocator growth, cuBLAS handles).
        infer_reviews: reviews of the carried test sample used for inference timing (None: all).
        infer_batch_size: 64, as `imdb-deploy evaluate` and train's evaluation use.
        infer_repeats: timed passes per inference variant; the median counts.
    """

    tiny_model: bool
    max_length: int
    batch_size: int
    train_reviews: int | None
    warmup_steps: int
    infer_reviews: int | None
    infer_batch_size: int
    infer_repeats: int


FULL = Profile(False, 512, 16, None, 10, None, 64, 3)
SMOKE = Profile(True, 64, 4, 48, 2, 40, 8, 1)


class Skipped(Exception):
    """A section that cannot run here; its reason goes into the JSON, and it is not a failure."""


class Stopped(Exception):
    """SIGTERM (a time limit) arrived: the running section records it and the rest are skipped."""


class Report:
    """The JSON document, rewritten atomically after every change so a killed run leaves it readable."""

    def __init__(self, path: Path, smoke: bool, argv: list[str]):
        self.path = path
        self.stopped = False
        self.started = time.perf_counter()
        self.data = {
            "schema": SCHEMA,
            "complete": False,
            "status": "running",
            "smoke": smoke,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": argv,
            "notes": [],
            "environment": {},
            "settings": {},
            "sections": {name: {"status": "pending"} for name in SECTIONS},
        }

    def save(self) -> None:
        write_json_atomic(self.path, self.data)

    def run(self, name: str, body):
        """Run one section's body(entry): ok, skipped (with reason) or error (message and traceback), then save.

        Returns:
            What body returned, or None when it did not succeed.
        """
        entry = self.data["sections"][name]
        entry.clear()
        entry["status"] = "running"
        self.save()
        start = time.perf_counter()
        result = None
        try:
            if self.stopped:
                raise Skipped("stopped by SIGTERM (time limit) before this section")
            result = body(entry)
            entry["status"] = "ok"
        except Skipped as exc:
            entry.update(status="skipped", reason=str(exc))
        except Exception as exc:  # any failure is recorded; the later sections still get their chance
            entry.update(status="error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-3000:])
            _log(f"{name}: {entry['error']}")
        finally:
            entry["seconds"] = round(time.perf_counter() - start, 2)
            self.save()
        return result

    def on_term(self, signum, frame) -> None:
        """SIGTERM handler (`timeout` at the time limit): stop the running section, skip the rest."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not interrupt the JSON being saved
        self.stopped = True
        raise Stopped(f"signal {signum} (time limit): stopped here")

    def finish(self) -> int:
        states = [s["status"] for s in self.data["sections"].values()]
        if "error" not in states:
            status = "ok"
        elif "ok" in states:
            status = "partial"
        else:
            status = "failed"
        self.data.update(complete=True, status=status, seconds_total=round(time.perf_counter() - self.started, 1))
        self.save()
        return 0 if status == "ok" else 1


def _log(message: str) -> None:
    with suppress(OSError):  # a closed log pipe must not stop the JSON from being written
        print(f"[gpu_check] {message}", file=sys.stderr, flush=True)


def _require(entry: dict, name: str) -> dict:
    if entry.get("status") != "ok":
        raise Skipped(f"needs section {name!r}, which did not succeed ({entry.get('status')})")
    return entry


# --- prepare (here) ------------------------------------------------------------------------------------------


def prepare(source: str, tokenizer_dir: str, out: Path, train_reviews: int, test_reviews: int, seed: int) -> Path:
    """Write the folder that travels: train.parquet, test.parquet, tokenizer/ and manifest.json."""
    import pandas as pd

    from imdb_deploy.rows.labelled import load_split, stratified_sample
    from imdb_deploy.runtimes.folder import load_tokenizer

    counts = {}
    with Output(out, {"the --data source": source}, folder=True, overwrite=True).writing() as tmp:
        for split, n in (("train", train_reviews), ("test", test_reviews)):
            sample = stratified_sample(load_split(source, split), n, seed)
            pd.DataFrame({"text": sample.texts, "label": sample.labels}).to_parquet(tmp / f"{split}.parquet")
            counts[split] = len(sample)
        load_tokenizer(tokenizer_dir).save_pretrained(tmp / "tokenizer")
        manifest = {"source": source, "tokenizer": tokenizer_dir, "reviews": counts, "seed": seed}
        write_json_atomic(tmp / "manifest.json", {**manifest, "date": datetime.now(timezone.utc).isoformat()})
    return out


# --- measure (there) -----------------------------------------------------------------------------------------


def _nvidia_smi() -> dict:
    fields = "name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit,temperature.gpu,pstate"
    try:
        done = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    if done.returncode:
        return {"error": (done.stderr or done.stdout).strip()[:500]}
    first = done.stdout.strip().splitlines()[0]
    return dict(zip(fields.split(","), (v.strip() for v in first.split(",")), strict=False))


def environment() -> dict:
    """Machine, GPU, driver and library versions."""
    import torch

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": logical_cpus(),
        "versions": versions(PACKAGES),
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(
            gpu_name=torch.cuda.get_device_name(0),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            gpu_multiprocessors=props.multi_processor_count,
            compute_capability=f"{props.major}.{props.minor}",
            cudnn=torch.backends.cudnn.version(),
            nvidia_smi=_nvidia_smi(),
        )
        env["driver"] = env["nvidia_smi"].get("driver_version")
    return env


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _forward_flops(config, batch: int, width: int) -> float:
    """Matrix-multiply FLOPs of one forward pass over a padded (batch, width) input, attention included and the
    classification head left out: 2 per multiply-add that architectures.useful_macs counts for `width` tokens."""
    work = useful_macs(config, [width] * batch)
    return 2.0 * (work["linear"] + work["attention"])


def setup(entry: dict, data_dir: Path, tokenizer_dir: Path, profile: Profile, smoke: bool) -> dict:
    """Device, tokenizer and tokenized reviews; times encode() on this machine's CPU."""
    import torch

    from imdb_deploy.rows.labelled import load_split, stratified_sample
    from imdb_deploy.runtimes.folder import load_tokenizer
    from imdb_deploy.tokenization import TokenizationSettings, encode

    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"{data_dir}: no such folder; run `bash scripts/gpu_check.sh prepare` here and carry .gpu_data"
        )
    if torch.cuda.is_available():
        device = torch.device("cuda")
    elif smoke:
        device = torch.device("cpu")
        torch.set_num_threads(1)  # a tiny model gains nothing from threads, and shared CPUs make them spin
    else:
        raise RuntimeError("no CUDA device: run this on the GPU machine, or pass --smoke for a CPU logic check")
    tokenizer = load_tokenizer(tokenizer_dir)
    settings = TokenizationSettings(max_length=profile.max_length, truncation="head+tail")
    train = stratified_sample(load_split(str(data_dir), "train"), profile.train_reviews, seed=0)
    test = stratified_sample(load_split(str(data_dir), "test"), profile.infer_reviews, seed=0)
    start = time.perf_counter()
    train_ids = encode(tokenizer, train.texts, settings)
    test_ids = encode(tokenizer, test.texts, settings)
    encode_seconds = time.perf_counter() - start
    lengths = [len(ids) for ids in train_ids + test_ids]
    entry.update(
        device=str(device),
        settings=settings.to_dict(),
        train_reviews=len(train_ids),
        test_reviews=len(test_ids),
        tokens_mean=round(statistics.fmean(lengths), 1),
        tokens_median=statistics.median(lengths),
        truncated_share=round(sum(n >= profile.max_length for n in lengths) / len(lengths), 3),
        encode_reviews_per_s=round(len(lengths) / encode_seconds, 1),
    )
    _log(
        f"setup: {len(train_ids)} train / {len(test_ids)} test reviews on {device}, mean {entry['tokens_mean']} tokens"
    )
    return {
        "device": device,
        "tokenizer": tokenizer,
        "train": (train_ids, train.labels),
        "test": (test_ids, test.labels),
    }


def train_bf16(entry: dict, state: dict, profile: Profile) -> None:
    """Training throughput through accelerate (bf16), in the loop `imdb-deploy train` runs.

    Untimed warm-up steps first; then two full epochs over the sample, each timed between CUDA synchronizes.
    Like train.py, every step reads the loss back to the host (one sync per step).
    """
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_linear_schedule_with_warmup
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from imdb_deploy.tokenization import pad
    from imdb_deploy.training.step import make_optimizer, training_step

    device, tokenizer = state["device"], state["tokenizer"]
    ids, labels = state["train"]
    accelerator = Accelerator(mixed_precision="bf16", cpu=device.type == "cpu")
    set_seed(0)

    def collate(items):
        arrays = pad([ids[i] for i in items], tokenizer.pad_token_id)
        batch = {k: torch.from_numpy(v) for k, v in arrays.items()}
        batch["labels"] = torch.tensor([labels[i] for i in items], dtype=torch.long)
        return batch

    order = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(
        range(len(ids)),
        batch_size=profile.batch_size,
        sampler=LengthGroupedSampler(profile.batch_size, lengths=[len(x) for x in ids], generator=order),
        collate_fn=collate,
        pin_memory=device.type == "cuda",
    )
    model = random_classifier(TINY if profile.tiny_model else {}, len(tokenizer))
    optimizer = make_optimizer(model, TRAIN_LR, WEIGHT_DECAY)
    total_steps = profile.warmup_steps + 2 * len(loader)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(WARMUP_RATIO * total_steps), total_steps)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    config = accelerator.unwrap_model(model).config
    entry.update(
        model=f"DistilBertConfig(dim={config.dim}, n_layers={config.n_layers}, hidden_dim={config.hidden_dim})",
        parameters=sum(p.numel() for p in model.parameters()),
        attention=config._attn_implementation,
        mixed_precision=accelerator.mixed_precision,
        batch_size=profile.batch_size,
        optimizer="AdamW (torch defaults: foreach on CUDA)",
        float32_matmul_precision=torch.get_float32_matmul_precision(),
        steps_per_epoch=len(loader),
    )

    def run_steps(limit: int | None) -> dict:
        reviews = steps = padded = 0
        tokens = torch.zeros((), dtype=torch.long, device=device)  # summed on the device: no extra sync per step
        flops = 0.0
        _sync(device)
        start = time.perf_counter()
        for batch in loader:
            if limit is not None and steps >= limit:
                break
            loss = training_step(accelerator, model, batch, optimizer, scheduler)  # train.py's own step
            loss.detach().float().item()  # train.py logs the loss each step; keep its host sync
            rows, width = batch["input_ids"].shape
            reviews, steps, padded = reviews + rows, steps + 1, padded + rows * width
            tokens += batch["attention_mask"].sum()
            flops += 3 * _forward_flops(config, rows, width)  # backward ~ twice the forward
        _sync(device)
        seconds = time.perf_counter() - start
        tokens = int(tokens)
        return {
            "steps": steps,
            "reviews": reviews,
            "seconds": round(seconds, 3),
            "reviews_per_s": round(reviews / seconds, 1),
            "ms_per_step": round(1000 * seconds / steps, 2),
            "tokens_per_s": round(tokens / seconds),
            "padded_share": round(1 - tokens / padded, 3),
            "model_tflops_per_s": round(flops / seconds / 1e12, 1),
        }

    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    entry["warmup"] = run_steps(profile.warmup_steps)
    epochs = []
    for epoch in (1, 2):
        order.manual_seed(epoch)
        epochs.append(run_steps(None))
        _log(f"train_bf16 epoch {epoch}: {epochs[-1]['reviews_per_s']} reviews/s, {epochs[-1]['ms_per_step']} ms/step")
    total_reviews = sum(e["reviews"] for e in epochs)
    total_seconds = sum(e["seconds"] for e in epochs)
    entry.update(
        epochs=epochs,
        reviews_per_s=round(total_reviews / total_seconds, 1),
        epoch_spread=round(max(e["reviews_per_s"] for e in epochs) / min(e["reviews_per_s"] for e in epochs), 3),
        model_tflops_per_s=round(statistics.fmean(e["model_tflops_per_s"] for e in epochs), 1),
        peak_memory_gib=round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
    )
    accelerator.end_training()


def inference(entry: dict, state: dict, profile: Profile) -> None:
    """Forward-pass throughput: fp32, fp32 with TF32, bf16 autocast, bf16 weights, and unsorted bf16 autocast.

    Tokenization and padding happen beforehand; each timed pass copies the padded ids to the device, runs the
    model and brings the logits back per batch (as evaluation.torch_logits does), between synchronizes.
    """
    import copy

    import numpy as np
    import torch

    from imdb_deploy.tokenization import length_sorted_batches, pad

    device, tokenizer = state["device"], state["tokenizer"]
    ids, _ = state["test"]
    size = profile.infer_batch_size
    sorted_batches = length_sorted_batches([len(x) for x in ids], size)
    unsorted_batches = [list(range(i, min(i + size, len(ids)))) for i in range(0, len(ids), size)]
    torch.manual_seed(0)
    model = random_classifier(TINY if profile.tiny_model else {}, len(tokenizer)).to(device).eval()
    bf16_model = None
    cuda = device.type == "cuda"

    def padded(batches):
        return [(rows, pad([ids[i] for i in rows], tokenizer.pad_token_id)) for rows in batches]

    def one_pass(net, batches, autocast: bool) -> tuple[float, np.ndarray]:
        logits = np.zeros((len(ids), 2), dtype=np.float32)
        context = torch.autocast(device.type, dtype=torch.bfloat16) if autocast else nullcontext()
        _sync(device)
        start = time.perf_counter()
        with torch.inference_mode(), context:
            for rows, arrays in batches:
                inputs = {k: torch.from_numpy(v).to(device) for k, v in arrays.items()}
                logits[rows] = net(**inputs).logits.float().cpu().numpy()
        _sync(device)
        return time.perf_counter() - start, logits

    variants = {
        # name: (model, batches, autocast, tf32)
        "fp32": ("fp32", sorted_batches, False, False),
        "fp32_tf32": ("fp32", sorted_batches, False, True),
        "bf16_autocast": ("fp32", sorted_batches, True, False),
        "bf16_weights": ("bf16", sorted_batches, False, False),
        "bf16_autocast_unsorted": ("fp32", unsorted_batches, True, False),
    }
    results, reference = {}, None
    entry.update(batch_size=size, reviews=len(ids), batches=len(sorted_batches), variants=results)
    for name, (weights, batches, autocast, tf32) in variants.items():
        if tf32 and not cuda:
            results[name] = {"status": "skipped", "reason": "TF32 is a CUDA matrix-unit mode; no CUDA device here"}
            continue
        precision = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("high" if tf32 else "highest")  # "high" lets fp32 matmuls use TF32
        try:
            if weights == "bf16" and bf16_model is None:
                bf16_model = copy.deepcopy(model).to(torch.bfloat16)
            net = bf16_model if weights == "bf16" else model
            arrays = padded(batches)
            one_pass(net, arrays[:3], autocast)  # warm-up, the longest batches included
            times = []
            for _ in range(profile.infer_repeats):
                seconds, logits = one_pass(net, arrays, autocast)
                times.append(seconds)
        except Stopped:
            raise
        except Exception as exc:  # one variant failing (e.g. out of memory) leaves the others measured
            results[name] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
            _log(f"inference {name}: {results[name]['error']}")
            continue
        finally:
            torch.set_float32_matmul_precision(precision)
        if name == "fp32":
            reference = logits
        seconds = statistics.median(times)
        results[name] = {
            "status": "ok",
            "reviews_per_s": round(len(ids) / seconds, 1),
            "seconds_median": round(seconds, 4),
            "seconds_all": [round(t, 4) for t in times],
        }
        if reference is not None:
            results[name]["relative_error_vs_fp32"] = float(
                np.linalg.norm(logits - reference) / np.linalg.norm(reference)
            )
            results[name]["argmax_agreement_vs_fp32"] = float((logits.argmax(1) == reference.argmax(1)).mean())
        _log(f"inference {name}: {results[name]['reviews_per_s']} reviews/s")
    if results["fp32"]["status"] == "ok":
        fp32 = results["fp32"]["reviews_per_s"]
        entry["speedup_vs_fp32"] = {
            name: round(r["reviews_per_s"] / fp32, 2) for name, r in results.items() if r["status"] == "ok"
        }
    failed = [name for name, r in results.items() if r["status"] == "error"]
    if failed:
        raise RuntimeError(f"inference variants failed: {', '.join(failed)} (the others are measured)")


def full_recipe(entry: dict, sections: dict) -> None:
    """Extrapolate the full recipe's time from the measured rates (no extra device work)."""
    train = _require(sections["train_bf16"], "train_bf16")
    setup_entry = _require(sections["setup"], "setup")
    epochs, batch = RECIPE["epochs"], RECIPE["batch_size"]
    train_reviews = epochs * RECIPE["train_reviews"]
    seconds = train_reviews / train["reviews_per_s"]
    entry.update(
        recipe=RECIPE,
        basis="train_bf16.reviews_per_s (two timed epochs over the carried sample, length-grouped batches of 16)",
        optimizer_steps=epochs * math.ceil(RECIPE["train_reviews"] / batch),
        train_seconds=round(seconds, 1),
        train_minutes=round(seconds / 60, 2),
    )
    # What `imdb-deploy train` adds by default: 10% of train held out for validation, evaluation of that and of
    # the 25,000 test reviews each epoch / at the end (unsorted batches of 64), and tokenizing everything first.
    infer = sections["inference"]
    eval_rate = None
    if infer.get("status") == "ok":
        eval_rate = infer["variants"].get("bf16_autocast_unsorted", {}).get("reviews_per_s")
    fit = round(RECIPE["train_reviews"] * (1 - RECIPE["val_size"]))
    val = RECIPE["train_reviews"] - fit
    defaults = {
        "train_seconds": round(epochs * fit / train["reviews_per_s"], 1),
        "tokenize_seconds": round(
            (RECIPE["train_reviews"] + RECIPE["test_reviews"]) / setup_entry["encode_reviews_per_s"], 1
        ),
    }
    if eval_rate:
        defaults["eval_seconds"] = round((epochs * val + RECIPE["test_reviews"]) / eval_rate, 1)
        defaults["total_seconds"] = round(sum(defaults.values()), 1)
    entry["imdb_deploy_train_defaults"] = defaults


def summary_table(report: dict) -> str:
    """A short table of the headline figures, for the end of the log."""
    env, sections = report["environment"], report["sections"]
    lines = [
        f"gpu_check {report['status']} ({'smoke' if report['smoke'] else 'full'}) on "
        f"{env.get('gpu_name', 'no GPU')}, driver {env.get('driver')}, torch {env.get('versions', {}).get('torch')}, "
        f"CUDA {env.get('torch_cuda')}, {report['date']}"
    ]
    for name, entry in sections.items():
        lines.append(f"  {name:<12} {entry['status']:<8} {entry.get('reason') or entry.get('error') or ''}")
    train = sections["train_bf16"]
    if train.get("status") == "ok":
        lines.append(f"  train bf16: {train['reviews_per_s']} reviews/s ({train['model_tflops_per_s']} TFLOP/s model)")
    recipe = sections["full_recipe"]
    if recipe.get("status") == "ok":
        lines.append(f"  full recipe (50,000 review-passes): {recipe['train_minutes']} min of training")
    infer = sections["inference"]
    for name, result in infer.get("variants", {}).items():
        if result.get("status") == "ok":
            lines.append(f"  inference {name:<24} {result['reviews_per_s']:>10} reviews/s")
    return "\n".join(lines)


def run_sections(report: Report, args, profile: Profile) -> None:
    """Environment, then each section in order, saving the JSON after each."""
    try:
        report.data["environment"] = environment()
    except Exception as exc:
        report.data["environment"] = {"error": f"{type(exc).__name__}: {exc}"}
    report.save()
    sections = report.data["sections"]
    state = report.run("setup", lambda entry: setup(entry, Path(args.data), Path(args.tokenizer), profile, args.smoke))

    def needs_setup(body):
        def run(entry):
            _require(sections["setup"], "setup")
            return body(entry, state, profile)

        return run

    report.run("train_bf16", needs_setup(train_bf16))
    report.run("inference", needs_setup(inference))
    report.run("full_recipe", lambda entry: full_recipe(entry, sections))


def measure(args) -> int:
    out = Path(args.out) if args.out else (Path(os.environ["OUT"]) / "gpu_check.json" if "OUT" in os.environ else None)
    if out is None:
        raise SystemExit("gpu_check measure: pass --out PATH (or set OUT, as the device machine does)")
    profile = SMOKE if args.smoke else FULL
    report = Report(out, args.smoke, args.argv)
    report.data["notes"] += args.note
    report.data["settings"] = {"profile": asdict(profile), "data": str(args.data), "tokenizer": str(args.tokenizer)}

    previous = signal.signal(signal.SIGTERM, report.on_term)
    try:
        run_sections(report, args, profile)
    finally:
        signal.signal(signal.SIGTERM, previous)
    code = report.finish()
    _log("\n" + summary_table(report.data))
    print(out)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="write the folder of real reviews and tokenizer that travels")
    prep.add_argument("--source", default="imdb", help="Hub id (imdb) or a local folder with train/test files")
    prep.add_argument("--tokenizer", default="distilbert-base-uncased", help="uncased tokenizer: Hub id or folder")
    prep.add_argument("--out", default=str(REPO / ".gpu_data"))
    prep.add_argument("--train-reviews", type=int, default=4000)
    prep.add_argument("--test-reviews", type=int, default=2000)
    prep.add_argument("--seed", type=int, default=42)
    run = commands.add_parser("measure", help="time training and inference; write one JSON file")
    run.add_argument("--data", default=str(REPO / ".gpu_data"), help="folder written by `prepare`")
    run.add_argument("--tokenizer", default=None, help="tokenizer folder (default: DATA/tokenizer)")
    run.add_argument("--out", default=None, help="JSON path (default: $OUT/gpu_check.json)")
    run.add_argument("--smoke", action="store_true", help="tiny model and sizes; runs on a CPU in seconds")
    run.add_argument("--note", action="append", default=[], help="a line to record in the JSON's notes")
    args = parser.parse_args(argv)
    args.argv = sys.argv if argv is None else ["gpu_check.py", *argv]
    if args.command == "prepare":
        folder = prepare(args.source, args.tokenizer, Path(args.out), args.train_reviews, args.test_reviews, args.seed)
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        _log(f"wrote {folder} ({size / 2**20:.1f} MiB)")
        return 0
    args.tokenizer = args.tokenizer or str(Path(args.data) / "tokenizer")
    return measure(args)


if __name__ == "__main__":
    sys.exit(main())
