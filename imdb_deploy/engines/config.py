"""Settings and summaries of the two engines (local streaming and the Ray Data job), light enough for the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field

from imdb_deploy.errors import ConfigError
from imdb_deploy.reviews import count_noun
from imdb_deploy.rows.config import INPUT_FORMATS, ON_DUPLICATE_ID, ON_ERROR, OUTPUT_FORMATS, parse_delimiter

# `predict --engine`: local streams in this process (predict_file); ray runs predict_ray.predict_ray.
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class ReadOptions:
    """How reviews are read and bad rows handled: the options both engines share (predict_file and
    predict_ray.predict_ray), checked here once for either.

    Attributes:
        input_format: "auto" picks per file by suffix (.parquet/.pq, .jsonl/.ndjson/.json, .csv, .txt; .gz
            stripped first) and otherwise by the first line ("{" means JSONL, anything else plain text, one
            review per line).
        text_field: JSONL field or CSV column holding the review.
        delimiter: CSV field separator: "auto" sniffs the header line among , ; tab and |; "tab" or one
            character.
        id_field: JSONL field, CSV or Parquet column copied to the output as `id` (a row without it is bad);
            None takes the `id` field or column where rows have one, else "FILE:LINE" (stdin: the line).
        on_error: "fail" stops at the first bad row (exit 1, no output); "skip" sets bad rows aside.
        on_duplicate_id: "warn" counts repeated and null ids of the rows scored in the summary; "fail"
            refuses the run when there are any (exit 1, no output).
        chunk_size: rows read, sorted by length and scored together (on Ray: a map batch, the unit of work an
            actor takes and of a lost node's redone work). 1024 gives a batch of 64 plenty of similar-length
            neighbours while memory stays flat for any file size.
        progress: progress bars on stderr; None shows them only when stderr is a terminal.
    """

    input_format: str = "auto"
    text_field: str = "text"
    delimiter: str = "auto"
    id_field: str | None = None
    on_error: str = "fail"
    on_duplicate_id: str = "warn"
    chunk_size: int = 1024
    progress: bool | None = None

    def __post_init__(self) -> None:
        for name, allowed in (
            ("input_format", INPUT_FORMATS),
            ("on_error", ON_ERROR),
            ("on_duplicate_id", ON_DUPLICATE_ID),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"{name}={value!r}: use one of {', '.join(allowed)}")
        if self.chunk_size < 1:
            raise ConfigError(f"chunk_size={self.chunk_size!r}: use 1 or more")
        if not self.text_field:
            raise ConfigError("text_field='': name the field or column holding the review")
        parse_delimiter(self.delimiter)


@dataclass(frozen=True)
class PredictFileConfig(ReadOptions):
    """How `predict_file` reads, scores and writes a file of reviews: the shared ReadOptions, and

    Attributes:
        output_format: "jsonl" or "csv"; one row per scored input row, in input order.
    """

    output_format: str = "jsonl"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.output_format not in OUTPUT_FORMATS:
            raise ConfigError(f"output_format={self.output_format!r}: use one of {', '.join(OUTPUT_FORMATS)}")


@dataclass
class PredictSummary:
    """What `predict_file` did. input_rows == scored + errors, always; blank lines are not rows.

    `unverified` is why the model's files are not tied to the gate's verdict (Predictor.files), None when
    they are.
    """

    files: int = 0
    input_rows: int = 0
    scored: int = 0
    errors: int = 0
    blank_lines: int = 0
    seconds: float = 0.0
    input_format: str = ""
    unverified: str | None = None
    repeated_ids: int = 0
    null_ids: int = 0
    id_note: str = ""

    @property
    def rows_per_second(self) -> float:
        return self.input_rows / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        """One line for people, e.g. `1,000 input rows = 998 scored + 2 errors; 310.5 rows/s (3.2 s)`."""
        files = f"{count_noun(self.files, 'file')}: " if self.files > 1 else ""
        text = (
            f"{files}{count_noun(self.input_rows, 'input row')} = {self.scored:,} scored + "
            f"{count_noun(self.errors, 'error')}; "
            f"{self.rows_per_second:,.1f} rows/s ({self.seconds:.1f} s)"
        )
        if self.blank_lines:
            text += f"; {count_noun(self.blank_lines, 'blank line')} ignored"
        if self.unverified:
            text += f"; model UNVERIFIED: {self.unverified}"
        return text + self.id_note


@dataclass(frozen=True)
class RayPredictConfig(ReadOptions):
    """How `predict_ray` reads, scores and writes: the local engine's ReadOptions (input_format, text_field,
    delimiter, id_field, on_error, on_duplicate_id, chunk_size, progress; checked by the same code), and

    Attributes:
        address: None starts a local Ray on this machine (all its CPUs) unless RAY_ADDRESS is set;
            "auto", "HOST:PORT" (the head's address) or "ray://host:10001" joins an existing cluster.
        actors: (min, max) actors in the pool (equal for a fixed pool), or the CLI's text "N" / "MIN,MAX"
            (parse_actors); None: the cluster's CPUs divided by cpus_per_actor, fixed. With min < max Ray
            Data adds actors while every actor has a batch waiting, as far as the cluster's free CPUs allow.
        cpus_per_actor: CPUs Ray reserves per actor, and the actor's intra-op threads.
        variant, batch_size, max_tokens, allow_unverified: as Predictor (the driver and every actor check
            the model's files; allow_unverified runs changed ones and says so in the summary).
        ship_model: put the model folder's files in Ray's object store so workers need no shared storage;
            False loads the folder from the same path on every worker (shared storage).
        overwrite: replace an existing output folder once the new one is complete.
        lean_start: a Ray started here runs without dashboard, metrics collection and usage stats
            (engines.cluster.start_options); False keeps Ray's defaults. No effect when joining a cluster.
        verbose: Ray's own logs and error reports (a failed task's traceback) on stderr too; off, a failed job
            is its one error (engines.cluster.DropRayErrors), and Ray's log files keep the rest.
    """

    address: str | None = None
    actors: tuple[int, int] | str | None = None
    cpus_per_actor: int = 1
    variant: str = "auto"
    batch_size: int | None = None
    max_tokens: int | None = None
    ship_model: bool = True
    overwrite: bool = False
    lean_start: bool = True
    allow_unverified: bool = False
    verbose: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.actors, str):
            object.__setattr__(self, "actors", parse_actors(self.actors))
        if self.actors is not None and not (1 <= self.actors[0] <= self.actors[1]):
            raise ConfigError(f"actors={self.actors!r}: use N or MIN,MAX with 1 <= MIN <= MAX")
        if self.cpus_per_actor < 1:
            raise ConfigError(f"cpus_per_actor={self.cpus_per_actor!r}: use 1 or more")


def parse_actors(text: str) -> tuple[int, int]:
    """`--actors` as (min, max): "4" is a fixed pool of 4, "1,8" autoscales between 1 and 8.

    Raises:
        ConfigError: not N or MIN,MAX with 1 <= MIN <= MAX.
    """
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or not 1 <= values[0] <= values[1]:
        raise ConfigError(f"actors={text!r}: use N (a fixed pool) or MIN,MAX with 1 <= MIN <= MAX, e.g. 2 or 1,8")
    return values[0], values[1]


@dataclass
class RayPredictSummary(PredictSummary):
    """What `predict_ray` did: the local engine's PredictSummary (rows, errors, ids, seconds, the model's
    verification) and where the work ran. input_rows == scored + errors, always (checked before the output
    appears).

    actors and nodes count the rows each actor (HOST:PID) and each Ray node (node id: address, actors,
    rows, batches) scored; a batch redone after a node was lost counts again where it was redone.
    """

    output: str = ""
    startup_seconds: float = 0.0
    actors: dict[str, dict] = field(default_factory=dict)
    nodes: dict[str, dict] = field(default_factory=dict)
    read_seconds: float = 0.0
    write_seconds: float = 0.0
    shards: int = 0
    ray_stats: str = ""

    def describe(self) -> str:
        """One line for people, e.g. `8 files: 4,000 input rows = 4,000 scored + 0 errors; ...`."""
        per_actor = " + ".join(f"{entry['rows']:,}" for entry in self.actors.values())
        return (
            f"{count_noun(self.files, 'file')}: {count_noun(self.input_rows, 'input row')} = {self.scored:,} "
            f"scored + {count_noun(self.errors, 'error')}; {self.rows_per_second:,.1f} rows/s "
            f"({self.seconds:.1f} s, Ray start {self.startup_seconds:.1f} s); "
            f"{count_noun(len(self.actors), 'actor')} scored {per_actor or 0} rows"
            f"{self._per_node()}{self.id_note}"
            f"{f'; model UNVERIFIED: {self.unverified}' if self.unverified else ''}"
        )

    def _per_node(self) -> str:
        if len(self.nodes) < 2:
            return ""
        rows = " + ".join(f"{entry['rows']:,}" for entry in self.nodes.values())
        return f" on {len(self.nodes)} nodes ({rows})"

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__} | {
            "rows_per_second": self.rows_per_second
        }
