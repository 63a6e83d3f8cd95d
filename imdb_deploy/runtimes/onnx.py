"""onnxruntime sessions and the ONNX variants of an exported folder."""

from __future__ import annotations

import os
from pathlib import Path

from imdb_deploy.errors import ModelLoadError
from imdb_deploy.runtimes.config import ONNX_FOLDER, ONNX_VARIANTS


def onnx_variants(onnx_dir: str | os.PathLike) -> dict[str, Path]:
    """The ONNX variants present in an exported folder, by name: under onnx/ (ONNX_FOLDER), or at the root of a
    folder exported before that layout."""
    folder = Path(str(onnx_dir))
    present = {}
    for name, file in ONNX_VARIANTS.items():
        path = next((p for p in (folder / ONNX_FOLDER / file, folder / file) if p.is_file()), None)
        if path is not None:
            present[name] = path
    return present


def onnx_path(onnx_dir: str | os.PathLike, variant: str) -> Path:
    """Where export writes a variant's graph: ONNX_FOLDER/ONNX_VARIANTS[variant] in the folder."""
    return Path(str(onnx_dir)) / ONNX_FOLDER / ONNX_VARIANTS[variant]


def pick_onnx_variant(folder: Path, present: dict[str, Path], variant: str, gpu: bool) -> tuple[str, Path]:
    """resolve_onnx_variant's choice among the variants `present` in `folder` (onnx_variants), read once."""
    if not present:
        raise ModelLoadError(
            f"{folder}: no ONNX model in it (expected one of {', '.join(dict.fromkeys(ONNX_VARIANTS.values()))}); "
            "create it with `imdb-deploy export MODEL_DIR --output DIR`"
        )
    if variant == "auto":
        order = ("fp16", "optimized", "fp32") if gpu else ("int8", "optimized", "fp32")
        for name in order:
            if name in present:
                return name, present[name]
        name = next(iter(present))
        return name, present[name]
    if variant not in ONNX_VARIANTS:
        raise ModelLoadError(f"variant {variant!r}: use auto or one of {', '.join(ONNX_VARIANTS)}")
    if variant not in present:
        raise ModelLoadError(
            f"{folder}: has no {variant} model ({ONNX_VARIANTS[variant]}); present: {', '.join(present)}"
        )
    return variant, present[variant]


def open_onnx_session(path: str | os.PathLike, provider: str = "cpu", threads: int | None = None):
    """An onnxruntime InferenceSession for one ONNX file.

    Args:
        path: the .onnx file.
        provider: "cpu" or "cuda".
        threads: intra-op threads; None lets onnxruntime use all physical cores.

    Raises:
        ModelLoadError: onnxruntime is missing, or CUDA was asked for and is not available.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelLoadError(
            "onnxruntime is not installed: pip install 'imdb-deploy[cpu]' (or '[gpu]' for onnxruntime-gpu)"
        ) from exc
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    if provider == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ModelLoadError(
                "CUDA was requested but onnxruntime has no CUDAExecutionProvider here "
                f"(available: {', '.join(ort.get_available_providers())}); install the gpu extra "
                "(pip install 'imdb-deploy[gpu]', which brings onnxruntime-gpu) or use --provider cpu"
            )
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    elif provider == "cpu":
        providers = ["CPUExecutionProvider"]
    else:
        raise ModelLoadError(f"provider {provider!r}: use cpu or cuda")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for broken files
        raise ModelLoadError(f"{path}: onnxruntime could not load it ({exc})") from exc
