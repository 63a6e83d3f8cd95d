"""Settings of train and evaluate (dataclasses and validation only), light enough for the CLI to import."""

from __future__ import annotations

from dataclasses import dataclass, fields

from imdb_deploy.errors import ConfigError
from imdb_deploy.tokenization import TRUNCATION_STRATEGIES, TokenizationSettings


@dataclass
class EvaluateConfig:
    """Settings of `imdb-deploy evaluate`.

    Attributes:
        data: data source (see imdb_deploy.data); "imdb" is the Hub dataset.
        split: the split to score; "test" for reported results.
        max_samples: a stratified sample of this many reviews (None: all) for quick checks.
        batch_size: 64 keeps a CPU busy without much padding once batches are length-sorted.
        seed: seed of the sample.
    """

    data: str = "imdb"
    split: str = "test"
    max_samples: int | None = None
    batch_size: int = 64
    seed: int = 42


MIXED_PRECISION = ("auto", "no", "fp16", "bf16")


@dataclass
class TrainConfig:
    """Everything `train` needs; saved into the model folder so later stages need none of these flags.

    Attributes:
        model: Hub id or local folder of the base encoder (or of a classifier to fine-tune further).
        data: data source (see imdb_deploy.data): "imdb" is the Hub dataset, or a local folder/files.
        output_dir: the model folder to write.
        epochs: 2 is the standard BERT fine-tuning recipe on IMDb (Devlin et al. use 2-4).
        batch_size: per device; 16 fits distilbert-base at 512 tokens on small GPUs and on CPU RAM.
        lr: peak learning rate; 2e-5 is the usual stable choice for a full 25k-review run. Short runs
            (a few hundred steps) learn faster with 5e-5.
        weight_decay: AdamW decay on all weights but biases and LayerNorm (BERT recipe).
        warmup_ratio: share of steps with linear warm-up, then linear decay to zero.
        gradient_accumulation_steps: effective batch = batch_size * this * processes.
        max_length: tokens per review; 512 is DistilBERT's limit, and half of IMDb reviews exceed 230 tokens.
        truncation: "head+tail" keeps the first and last tokens of long reviews (Sun et al., 2019: best on
            IMDb; here 0.850 vs 0.820 for "head" on 1,000 test reviews after the same 2,000-review run at
            256 tokens); "head" keeps the first.
        val_size: validation share (fraction) or count carved from train, seeded and stratified; 0 disables
            model selection (the last epoch is kept).
        max_train_samples / max_eval_samples: stratified samples for quick runs (eval caps validation and test).
        mixed_precision: "auto" picks bf16 on a GPU that supports it (Ampere and newer), fp16 on an older
            GPU, and "no" on the CPU (CPU autocast is slower than fp32 there); or name one.
        seed: seeds sampling, the new head, dropout and batch order.
        checkpoint_every: save a resumable checkpoint every N optimizer steps (and at each epoch end).
        eval_batch_size: inference needs no gradients, so batches can be larger; None: 64 on the CPU,
            256 on a GPU.
        num_workers: DataLoader workers; None: 0 on the CPU (tokenization is done up front, so workers would
            only collate, and would take cores from the model), 2 on a GPU, where collating and pinned-memory
            copies then overlap the GPU's work.
        tf32: on a GPU, let fp32 matmuls (the parts autocast leaves in fp32, or all of them without mixed
            precision) use TF32 tensor cores on Ampere and newer; no effect on the CPU.
        cpu: train on the CPU even when a GPU is present.
    """

    model: str = "distilbert-base-uncased"
    data: str = "imdb"
    output_dir: str = "runs/distilbert-imdb"
    epochs: int = 2
    batch_size: int = 16
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    gradient_accumulation_steps: int = 1
    max_length: int = 512
    truncation: str = "head+tail"
    val_size: float = 0.1
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    mixed_precision: str = "auto"
    seed: int = 42
    checkpoint_every: int = 500
    eval_batch_size: int | None = None
    num_workers: int | None = None
    tf32: bool = True
    cpu: bool = False

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "gradient_accumulation_steps", "checkpoint_every", "eval_batch_size")
        for name in positive:
            value = getattr(self, name)
            if name == "eval_batch_size" and value is None:
                continue
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r}: use a whole number of at least 1")
        if not 0 < self.lr < 1:
            raise ConfigError(f"lr={self.lr!r}: use a learning rate between 0 and 1, e.g. 2e-5")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio={self.warmup_ratio!r}: use a fraction from 0 to below 1")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay={self.weight_decay!r}: use 0 or more")
        if self.truncation not in TRUNCATION_STRATEGIES:
            raise ConfigError(f"truncation={self.truncation!r}: use one of {', '.join(TRUNCATION_STRATEGIES)}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ConfigError(f"mixed_precision={self.mixed_precision!r}: use one of {', '.join(MIXED_PRECISION)}")
        if self.val_size < 0 or (self.val_size >= 1 and not float(self.val_size).is_integer()):
            raise ConfigError(f"val_size={self.val_size!r}: use a fraction below 1, a count of reviews, or 0")
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise ConfigError(f"{name}={value!r}: use at least 2 so both labels stay present")
        if self.num_workers is not None and (not isinstance(self.num_workers, int) or self.num_workers < 0):
            raise ConfigError(f"num_workers={self.num_workers!r}: use 0 or more (or leave it unset)")
        _ = self.settings  # validates max_length

    @property
    def settings(self) -> TokenizationSettings:
        return TokenizationSettings(max_length=self.max_length, truncation=self.truncation)

    def training_fields(self) -> dict:
        """The fields that change the result (resume refuses to continue a run with different ones)."""
        skip = {"output_dir", "checkpoint_every", "eval_batch_size", "num_workers", "tf32", "cpu"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


# --unlabelled: the data source's own unlabelled split where it has one (IMDb's `unsupervised`), or none.
UNLABELLED_AUTO, UNLABELLED_NONE = "auto", "none"


@dataclass
class DistillConfig:
    """Settings of `imdb-deploy distill`: a smaller student learns from a trained teacher.

    Attributes:
        teacher: the trained teacher folder (train's output: a DistilBERT sequence classifier with
            train_config.json); the student reads reviews exactly as it does (max length, truncation, labels).
        output_dir: the student folder to write.
        layers: transformer layers of the student; None: half the teacher's (at least 1). It must be below the
            teacher's. The student starts from the teacher's own layers spread evenly (0, 2, 4 of six), with its
            embeddings and classifier head: a pruned teacher, not a random network.
        teacher_onnx: the teacher's exported folder; its soft targets then come from the default variant export
            measured fastest on this CPU (gated against the PyTorch teacher: INT8 agrees on >= 98% of labels), in
            minutes instead of hours of PyTorch on the CPU. None: the PyTorch teacher.
        data: labelled reviews (train split for training, test for the final report); None: the teacher's own
            data source as its train_config.json records it.
        unlabelled: more reviews the student learns from the teacher alone: "auto" takes the data source's
            unlabelled split where it has one (IMDb's 50,000 `unsupervised` reviews: the Hub's stanfordnlp/imdb, or
            unsupervised.parquet/.jsonl/.csv beside train and test), "none" none, else a file, folder or glob of
            reviews in any format predict reads.
        text_field: the field or column holding the review in an unlabelled file.
        max_unlabelled_samples: a seeded sample of the unlabelled reviews (None: all).
        temperature: softens both distributions; 2 is Hinton et al.'s usual choice for two classes, where T=1
            gives the student little beyond the label on confident reviews.
        alpha: the soft targets' share of a labelled review's loss (the label's share is 1 - alpha); an
            unlabelled review learns from the soft targets alone. T^2 scales the soft term (Hinton et al.).
        epochs, batch_size, lr, weight_decay, warmup_ratio, gradient_accumulation_steps, val_size,
            max_train_samples, max_eval_samples, seed, checkpoint_every, mixed_precision, eval_batch_size,
            num_workers, tf32, cpu: as train's (TrainConfig); 5e-5 is the short-run rate, right for a student
            that starts from the teacher's layers.
        teacher_cache: folder for the teacher's outputs, kept with the checksums of the teacher and of the
            reviews so a resumed or repeated run reuses them; None: the user cache (folders.user_cache_dir()).
    """

    teacher: str = ""
    output_dir: str = "runs/student"
    layers: int | None = None
    teacher_onnx: str | None = None
    data: str | None = None
    unlabelled: str = UNLABELLED_AUTO
    text_field: str = "text"
    max_unlabelled_samples: int | None = None
    temperature: float = 2.0
    alpha: float = 0.5
    epochs: int = 1
    batch_size: int = 16
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    gradient_accumulation_steps: int = 1
    val_size: float = 0.1
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    seed: int = 42
    checkpoint_every: int = 500
    teacher_cache: str | None = None
    mixed_precision: str = "auto"
    eval_batch_size: int | None = None
    num_workers: int | None = None
    tf32: bool = True
    cpu: bool = False

    def __post_init__(self) -> None:
        if self.mixed_precision not in MIXED_PRECISION:
            raise ConfigError(f"mixed_precision={self.mixed_precision!r}: use one of {', '.join(MIXED_PRECISION)}")
        if not self.teacher:
            raise ConfigError("teacher='': name the trained teacher folder")
        for name in ("epochs", "batch_size", "gradient_accumulation_steps", "checkpoint_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name}={value!r}: use a whole number of at least 1")
        if self.layers is not None and (not isinstance(self.layers, int) or self.layers < 1):
            raise ConfigError(f"layers={self.layers!r}: use a whole number of at least 1 (or leave it out for half)")
        if not 0 < self.temperature <= 100:
            raise ConfigError(f"temperature={self.temperature!r}: use a positive number, e.g. 2")
        if not 0 <= self.alpha <= 1:
            raise ConfigError(f"alpha={self.alpha!r}: use a share from 0 (labels only) to 1 (soft targets only)")
        if not 0 < self.lr < 1:
            raise ConfigError(f"lr={self.lr!r}: use a learning rate between 0 and 1, e.g. 5e-5")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio={self.warmup_ratio!r}: use a fraction from 0 to below 1")
        if self.val_size < 0 or (self.val_size >= 1 and not float(self.val_size).is_integer()):
            raise ConfigError(f"val_size={self.val_size!r}: use a fraction below 1, a count of reviews, or 0")
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise ConfigError(f"{name}={value!r}: use at least 2 so both labels stay present")
        if self.max_unlabelled_samples is not None and self.max_unlabelled_samples < 1:
            raise ConfigError(f"max_unlabelled_samples={self.max_unlabelled_samples!r}: use 1 or more (or all)")
        if not self.text_field:
            raise ConfigError("text_field='': name the field or column holding the review")

    def training_fields(self) -> dict:
        """The fields that change the result (resume refuses to continue a run with different ones)."""
        skip = {"output_dir", "checkpoint_every", "teacher_cache", "eval_batch_size", "num_workers", "tf32", "cpu"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
