"""Run a benchmark command and record its JSON, with the machine, date and commit, as docs/results/NAME.json.

    python scripts/record_result.py NAME --kind bench --result runs/bench/bench.json --quiet-cores \\
        [--title TEXT] [--note TEXT] [--headline] [--replace] -- imdb-deploy bench --model ... --output runs/bench
    python scripts/make_docs.py      # then regenerate docs/benchmarks.md (and the README's headline table)

The command runs from the current folder; it must exit 0 and write --result during the run (a file older than
the run is refused, so a stale result cannot be recorded). The envelope is the one scripts/make_docs.py reads:
{"meta": {kind, title, command, date, commit, dirty, quiet, note, headline, machine}, "result": <the JSON>}.
Machine facts come from imdb_deploy.machine (CPU model, ISA, cores, memory, versions). Say whether the cores were
quiet (--quiet-cores: nothing else ran) or not (--shared-cores). Paths inside the repository are stored relative
to it; a command or result that names another path of this machine is refused (a newcomer could not rerun it).
An existing NAME needs --replace; the run it replaces is then listed in docs/history.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from make_docs import KINDS, MACHINE_PATHS, DocsError, check_envelope, detect_kind  # noqa: E402

from imdb_deploy.fileio import atomic_file, write_json_atomic  # noqa: E402
from imdb_deploy.machine import STACK, cpu_flags, machine_info  # noqa: E402

VERSIONS = (*STACK, "numpy", "ray", "openvino", "nncf", "fastapi", "uvicorn")
EXTRA_ISA = ("avx512_bf16", "amx_bf16", "amx_int8")  # worth naming beside machine.ISA_FLAGS
HISTORY_HEADER = "## Replaced runs"


def git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if done.returncode:
        raise DocsError(f"git {' '.join(args)} failed in {ROOT}: {done.stderr.strip()}")
    return done.stdout.strip()


def machine_facts() -> dict:
    """machine_info() without the long flag list, its isa list with the AMX / BF16 extras, versions present."""
    info = machine_info(packages=VERSIONS)
    flags = cpu_flags()
    info["isa"] = [*info["isa"], *(flag for flag in EXTRA_ISA if flag in flags)]
    info["versions"] = {name: value for name, value in info["versions"].items() if value}
    info.pop("flags", None)
    return info


def relative_paths(value, root: str):
    """Every string with the repository's absolute path made relative to it (the result of a run from it)."""
    if isinstance(value, dict):
        return {key: relative_paths(item, root) for key, item in value.items()}
    if isinstance(value, list):
        return [relative_paths(item, root) for item in value]
    if isinstance(value, str):
        return value.replace(root + "/", "").replace(root, ".")
    return value


def machine_path(value, where: str = "result") -> str | None:
    """Where a path of this machine (MACHINE_PATHS) is in `value`, or None."""
    if isinstance(value, dict):
        found = (machine_path(item, f"{where}.{key}") for key, item in value.items())
        return next((hit for hit in found if hit), None)
    if isinstance(value, list):
        found = (machine_path(item, f"{where}[{i}]") for i, item in enumerate(value))
        return next((hit for hit in found if hit), None)
    if isinstance(value, str) and MACHINE_PATHS.search(value):
        return f"{where} ({value[:80]})"
    return None


def note_replaced(history: Path, name: str, old: dict, date: str) -> None:
    """One line in docs/history.md for the run NAME replaces (its JSON stays in git at the commit named)."""
    meta = old["meta"]
    added = git("log", "-1", "--format=%h", "--", f"docs/results/{name}.json")
    where = f"`git show {added}:docs/results/{name}.json`" if added else "never committed"
    machine = meta["machine"]["cpu_model"]
    line = (
        f"- `{name}` ({meta['title']}): recorded {meta['date']} at `{meta['commit']}` on {machine}, "
        f"replaced {date}. Its JSON: {where}."
    )
    text = history.read_text() if history.is_file() else "# History\n"
    if HISTORY_HEADER not in text:
        text = text.rstrip() + f"\n\n{HISTORY_HEADER}\n\nRuns that a newer run of the same name replaced.\n"
    with atomic_file(history) as tmp:
        tmp.write_text(text.rstrip() + "\n" + line + "\n")


def record(args: argparse.Namespace) -> Path:
    if not args.command:
        raise DocsError("no command: give it after --, e.g. -- imdb-deploy bench --output runs/bench")
    command = relative_paths(shlex.join(args.command), str(ROOT))
    hit = machine_path(command, "the command")
    if hit:
        raise DocsError(f"{hit} names a path of this machine; run it with paths inside the repository or a Hub id")
    target = args.results_dir / f"{args.name}.json"
    if target.exists() and not args.replace:
        raise DocsError(f"{target} exists; pass --replace to supersede it (it is listed in docs/history.md)")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    if dirty and not args.allow_dirty:
        raise DocsError("the working tree has uncommitted changes; commit first so the result names its code")
    commit = git("rev-parse", "--short=12", "HEAD")
    started = time.time()
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    code = subprocess.run(args.command).returncode
    if code:
        raise DocsError(f"the command exited {code}; nothing recorded")
    if not args.result.is_file() or args.result.stat().st_mtime < started:
        raise DocsError(f"{args.result} was not written by this run; pass the file the command writes as --result")
    result = relative_paths(json.loads(args.result.read_text()), str(ROOT))
    hit = machine_path(result)
    if hit:
        raise DocsError(f"{hit} names a path of this machine; pass paths inside the repository or a Hub id")
    meta = {
        "kind": args.kind,
        "title": args.title or args.name,
        "command": command,
        "date": date,
        "commit": commit,
        "dirty": dirty,
        "quiet": args.quiet,
        "note": args.note,
        "headline": args.headline,
        "machine": machine_facts(),
    }
    envelope = {"meta": meta, "result": result}
    check_envelope({**envelope, "meta": {**meta, "dirty": False}}, str(target))  # dirty only with --allow-dirty
    if target.exists():
        note_replaced(args.results_dir.parent / "history.md", args.name, json.loads(target.read_text()), date)
    return write_json_atomic(target, envelope)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], usage="%(prog)s NAME [options] -- COMMAND...")
    parser.add_argument("name", help="docs/results/NAME.json (letters, digits, - and _)")
    parser.add_argument("--kind", required=True, choices=KINDS, help="which script wrote the result")
    parser.add_argument("--result", required=True, type=Path, help="the JSON file the command writes")
    quiet = parser.add_mutually_exclusive_group(required=True)
    quiet.add_argument("--quiet-cores", dest="quiet", action="store_true", help="nothing else ran on the cores")
    quiet.add_argument("--shared-cores", dest="quiet", action="store_false", help="other work shared the cores")
    parser.add_argument("--title", help="section title in docs/benchmarks.md [default: NAME]")
    parser.add_argument("--note", help="one line a reader needs (what ran beside it, what is unusual)")
    parser.add_argument("--headline", action="store_true", help="this is the README's headline table")
    parser.add_argument("--replace", action="store_true", help="supersede an existing NAME")
    parser.add_argument("--allow-dirty", action="store_true", help="record from uncommitted code (make_docs refuses)")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "docs" / "results", help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.command = argv[split + 1 :]  # everything after --: the command that writes --result
    try:
        if not args.name.replace("-", "").replace("_", "").isalnum():
            raise DocsError(f"{args.name!r}: use letters, digits, - and _ for NAME")
        path = record(args)
        kind = detect_kind(json.loads(path.read_text())["result"])
        print(f"recorded {path} ({kind}); now run python scripts/make_docs.py", file=sys.stderr)
    except DocsError as exc:
        print(f"record_result: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
