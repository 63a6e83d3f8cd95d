"""Facts about this machine, in one place: CPU flags, cores, clock, memory, versions, and the peaks.

Ground floor: uses psutil and the standard library, nothing of imdb_deploy, so scripts/gpu_check.py can
import it on a machine with only torch, accelerate (which brings psutil) and transformers.
"""

from __future__ import annotations

import functools
import gc
import os
import platform
import re
import resource
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psutil


def current_umask() -> int:
    """The process umask, read without changing it (Linux's /proc; os.umask twice elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# The libraries that produce and run the models, as export_report.json records them.
STACK = ("imdb-deploy", "torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime")

# A distribution that provides the same module under another name (the GPU build of onnxruntime).
_ALTERNATIVES = {"onnxruntime": ("onnxruntime-gpu",)}

# Flags named in a report's short "isa" list, widest first: the ones that decide which kernels the runtimes pick
# (AMX and AVX512-BF16 tiles and dot products, VNNI INT8 dot products, the vector widths; ARM's dot product).
# A folder's measured default variant records them (runtime_choice) and warns when they differ at load.
ISA_FLAGS = (
    "amx_int8",
    "amx_bf16",
    "avx512_bf16",
    "avx512_vnni",
    "avx_vnni",
    "avx512bw",
    "avx512f",
    "avx2",
    "fma",
    "asimddp",
)

# Useful INT8 multiply-adds per cycle per core, from the widest integer dot-product path the ISA offers,
# first match wins. Without VNNI (AVX2, AVX512BW), ONNX Runtime's MLAS kernels multiply u8 activations by
# s8 weights with VPMADDUBSW (W/8 byte pairs -> W/16 int16 sums of two products) and must widen each result
# to int32 with a VPMADDWD against ones before adding: two multiply-port instructions per W/8 multiply-adds.
# Current cores issue two such instructions per cycle (Intel Skylake and later: ports 0 and 1/5; AMD Zen 3
# and later: FP0 and FP3), hence W/8 per cycle: 32 for AVX2's 256 bits. research/bench_cpu_peak.py measures
# it on the machine at hand (this 2-core Zen 3: 1.0 VPMADDUBSW+VPMADDWD+VPADDD group per cycle). VNNI fuses
# all three into VPDPBUSD: W/8 multiply-adds per instruction, two per cycle.
INT8_PATHS = (
    ("avx512_vnni", 128, "VPDPBUSD zmm: 64 u8*s8 multiply-adds into int32 per instruction, 2 per cycle"),
    ("avx_vnni", 64, "VPDPBUSD ymm: 32 u8*s8 multiply-adds into int32 per instruction, 2 per cycle"),
    ("avx512bw", 64, "VPMADDUBSW zmm + VPMADDWD zmm (widen to int32): 64 multiply-adds per 2 multiply uops, 2/cycle"),
    ("avx2", 32, "VPMADDUBSW ymm + VPMADDWD ymm (widen to int32): 32 multiply-adds per 2 multiply uops, 2/cycle"),
    ("sse4_1", 16, "PMADDUBSW xmm + PMADDWD xmm: 16 multiply-adds per 2 multiply uops, 2/cycle"),
)

# fp32 multiply-adds per cycle per core: two FMA units of W/32 lanes.
FP32_PATHS = (
    ("avx512f", 32, "2 x VFMADD zmm (16 lanes) per cycle"),
    ("fma", 16, "2 x VFMADD ymm (8 lanes) per cycle"),
    ("sse2", 8, "2 x (MULPS + ADDPS) xmm (4 lanes) per cycle"),
)


@functools.cache
def cpuinfo() -> tuple[dict[str, str], ...]:
    """One dict per logical CPU from /proc/cpuinfo (Linux); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ()
    cpus = []
    for block in text.strip().split("\n\n"):
        entry = {}
        for line in block.splitlines():
            key, _, value = line.partition(":")
            entry[key.strip()] = value.strip()
        cpus.append(entry)
    return tuple(cpus)


def cpu_flags() -> set[str]:
    """Instruction-set flags of this CPU ("flags" on x86, "Features" on ARM); empty where unreadable."""
    first = cpuinfo()[0] if cpuinfo() else {}
    return set(first.get("flags", first.get("Features", "")).split())


def cpu_model() -> str:
    """The CPU's model name, or the best the platform module knows."""
    first = cpuinfo()[0] if cpuinfo() else {}
    return first.get("model name") or platform.processor() or platform.machine()


def logical_cpus() -> int:
    """All logical CPUs of the machine, whether or not this process may use them (os.cpu_count)."""
    return os.cpu_count() or 1


def usable_cpus() -> int:
    """Logical CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(psutil.Process().cpu_affinity()) or 1
    except (AttributeError, psutil.Error):  # no affinity API on macOS
        return psutil.cpu_count() or 1


def physical_cores() -> int:
    """Physical cores this process may run on (usable logical CPUs / threads per core)."""
    logical, physical = psutil.cpu_count(), psutil.cpu_count(logical=False)
    threads_per_core = max(1, logical // physical) if logical and physical else 1
    return max(1, usable_cpus() // threads_per_core)


def clock_ghz() -> tuple[float | None, str]:
    """The clock a peak is computed at, and where it came from (the maximum boost clock where known)."""
    max_freq = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    try:
        return int(max_freq.read_text()) / 1e6, f"{max_freq} (maximum boost clock)"
    except (OSError, ValueError):
        pass
    cpus = cpuinfo()
    mhz = [float(cpu["cpu MHz"]) for cpu in cpus if cpu.get("cpu MHz", "").replace(".", "", 1).isdigit()]
    if mhz:
        return max(mhz) / 1000, (
            "/proc/cpuinfo 'cpu MHz' (the current or, under a hypervisor, the nominal clock; a boost clock "
            "above it makes the share an overestimate: pass --cpu-ghz)"
        )
    match = re.search(r"@\s*([\d.]+)\s*GHz", cpus[0].get("model name", "")) if cpus else None
    if match:
        return float(match.group(1)), "the CPU model name (nominal clock)"
    return None, "unknown (pass --cpu-ghz)"


def memory_gib() -> float:
    """Total memory of the machine in GiB (one decimal)."""
    return round(psutil.virtual_memory().total / 2**30, 1)


def resident_bytes() -> int:
    """Resident memory of this process now, in bytes."""
    return psutil.Process().memory_info().rss


def _peak_resident_mb() -> float:
    """This process's resident high-water mark (VmHWM on Linux, which psutil does not report), in MiB."""
    try:
        match = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
        if match:
            return round(int(match.group(1)) / 1024, 1)
    except OSError:
        pass

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (2**20 if sys.platform == "darwin" else 1024), 1)


class PeakMemory:
    """Peak resident memory of this process over a block, in MiB.

    On Linux the kernel's high-water mark (VmHWM) is reset at the start by writing 5 to
    /proc/self/clear_refs, so the peak belongs to the block alone; elsewhere it is the process peak so far.
    """

    def __enter__(self) -> PeakMemory:
        gc.collect()
        self.start_mb = round(resident_bytes() / 2**20, 1)
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.exact = True
        except OSError:
            self.exact = False
        self.peak_mb = self.start_mb
        return self

    def __exit__(self, *exc) -> None:
        self.peak_mb = _peak_resident_mb()


def versions(names: Sequence[str] = STACK) -> dict[str, str | None]:
    """Installed versions of these distributions (None for a missing one)."""
    out = {}
    for name in names:
        out[name] = None
        for candidate in (name, *_ALTERNATIVES.get(name, ())):
            try:
                out[name] = version(candidate)
                break
            except PackageNotFoundError:
                continue
    return out


def machine_info(cpu_ghz: float | None = None, packages: Sequence[str] = (*STACK, "numpy")) -> dict:
    """The CPU (model, flags, cores, clock), memory, OS and library versions, as bench.json records them.

    Args:
        cpu_ghz: the clock to use instead of the one read from the OS.
        packages: distributions whose versions to record.
    """
    flags = sorted(cpu_flags())
    clock, clock_source = (cpu_ghz, "--cpu-ghz") if cpu_ghz else clock_ghz()
    return {
        "cpu_model": cpu_model(),
        "machine": platform.machine(),
        "logical_cpus": usable_cpus(),
        "physical_cores": physical_cores(),
        "clock_ghz": clock,
        "clock_source": clock_source,
        "flags": flags,
        "isa": [flag for flag in ISA_FLAGS if flag in flags],
        "memory_gib": memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions(packages),
    }


def cpu_peak(machine: dict) -> dict:
    """Peak multiply-adds per second of the usable cores, INT8 and fp32, derived from the ISA.

    peak = physical cores x clock (Hz) x multiply-adds per cycle per core (INT8_PATHS / FP32_PATHS).

    Args:
        machine: `machine_info()` (flags, physical_cores, clock_ghz, clock_source).
    """
    flags = set(machine["flags"])
    out = {
        "formula": "physical_cores x clock_hz x macs_per_cycle_per_core",
        "physical_cores": machine["physical_cores"],
        "clock_ghz": machine["clock_ghz"],
        "clock_source": machine["clock_source"],
    }
    for precision, paths in (("int8", INT8_PATHS), ("fp32", FP32_PATHS)):
        flag, per_cycle, how = next(((f, n, h) for f, n, h in paths if f in flags), (None, None, None))
        peak = None
        if per_cycle and machine["clock_ghz"]:
            peak = machine["physical_cores"] * machine["clock_ghz"] * 1e9 * per_cycle
        out[precision] = {"isa": flag, "macs_per_cycle_per_core": per_cycle, "instructions": how, "macs_per_s": peak}
    return out
