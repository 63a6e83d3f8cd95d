"""machine: the one place for facts about this machine (flags, cores, clock, memory, versions, peaks)."""

from __future__ import annotations

import mmap

import numpy as np

from imdb_deploy import machine


def test_cpu_peak_from_the_isa():
    facts = {"flags": ["sse4_1", "avx2", "fma"], "physical_cores": 2, "clock_ghz": 3.0, "clock_source": "test"}
    peak = machine.cpu_peak(facts)
    # AVX2 without VNNI: VPMADDUBSW + VPMADDWD per 32 multiply-adds, two multiply ports -> 32 per cycle per core.
    assert peak["int8"]["isa"] == "avx2" and peak["int8"]["macs_per_s"] == 2 * 3.0e9 * 32
    assert peak["fp32"]["macs_per_s"] == 2 * 3.0e9 * 16
    vnni = machine.cpu_peak({**facts, "flags": ["avx2", "avx512bw", "avx512_vnni", "avx512f"]})
    assert vnni["int8"]["isa"] == "avx512_vnni" and vnni["int8"]["macs_per_cycle_per_core"] == 128
    assert machine.cpu_peak({**facts, "clock_ghz": None})["int8"]["macs_per_s"] is None


def test_machine_info_describes_this_machine():
    info = machine.machine_info()
    assert 1 <= info["physical_cores"] <= info["logical_cpus"] <= machine.logical_cpus()
    assert info["memory_gib"] > 0 and info["cpu_model"]
    assert set(info["isa"]) <= set(info["flags"])
    assert info["flags"] == sorted(machine.cpu_flags())
    assert info["versions"]["numpy"] == np.__version__ and info["versions"]["onnxruntime"]
    assert machine.machine_info(cpu_ghz=2.5)["clock_ghz"] == 2.5


def test_versions_name_missing_packages_none():
    found = machine.versions(("numpy", "no-such-package-imdb-deploy"))
    assert found == {"numpy": np.__version__, "no-such-package-imdb-deploy": None}


def test_peak_memory_sees_an_allocation():
    with machine.PeakMemory() as memory:
        # 64 MiB of fresh pages, touched: an anonymous map of its own, so memory the allocator kept from earlier
        # tests in this process cannot serve it without raising the resident size.
        block = mmap.mmap(-1, 64 * 2**20)
        np.frombuffer(block, dtype=np.uint8)[:] = 1
        block.close()
    assert memory.start_mb > 0
    if memory.exact:
        assert memory.peak_mb - memory.start_mb >= 50
