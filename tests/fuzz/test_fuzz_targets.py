"""Every fuzz target for a few seconds: mutated seeds (and whatever scripts/fuzz.py
has added to the corpus directory) never end in an uncaught exception, a hang or an
allocation past the limit.  PEMU_FUZZ_EXAMPLES scales the number of inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import mutate
from tests.fuzz.harness import DEFAULT_CORPUS, corpus_inputs, run_one
from tests.fuzz.targets import TARGETS

# inputs per target: the slow ones (a qcow2 image is opened, read and checked) get fewer
EXAMPLES = {"qcow2": 40, "migration-section": 100}
SCALE = float(os.environ.get("PEMU_FUZZ_EXAMPLES", "1"))

mutations = st.lists(st.tuples(st.sampled_from(mutate.KINDS), st.integers(0, 2**32 - 1),
                               st.integers(0, 2**32 - 1)), min_size=1, max_size=8)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_target(name):
    target = TARGETS[name]
    seeds = target.seeds()
    corpus = os.environ.get("PEMU_FUZZ_CORPUS", str(DEFAULT_CORPUS))
    replay = corpus_inputs(Path(corpus), target)
    for data in replay:  # what earlier long runs found interesting
        outcome = run_one(target, data)
        assert outcome.verdict != "bug", outcome.detail

    @settings(max_examples=max(1, int(EXAMPLES.get(name, 150) * SCALE)), deadline=None,
              suppress_health_check=list(HealthCheck), database=None)
    @given(pick=st.integers(0, 1000), muts=mutations, raw=st.binary(max_size=64))
    def fuzz(pick, muts, raw):
        seed = seeds[pick % len(seeds)]
        data = mutate.apply(seed.data, muts, list(seed.focus), other=raw)
        outcome = run_one(target, data)
        assert outcome.verdict != "bug", outcome.detail

    fuzz()


def test_the_harness_catches_crashes_hangs_and_hoarding(monkeypatch):
    from tests.fuzz import harness
    from tests.fuzz.targets import FuzzTarget

    monkeypatch.setattr(harness, "TIME_LIMIT_S", 0.2)

    def run(data: bytes) -> None:
        if data == b"crash":
            raise RuntimeError("boom")
        if data == b"hang":
            while True:
                pass
        if data == b"hoard":
            _ = bytearray(harness.MEMORY_LIMIT + 1)
        if data == b"refuse":
            raise ValueError("no")

    t = FuzzTarget("selftest", lambda: [], run, (ValueError,), ())
    assert run_one(t, b"fine").verdict == "accepted"
    assert run_one(t, b"refuse").verdict == "refused"
    for bad in (b"crash", b"hang", b"hoard"):
        assert run_one(t, bad).verdict == "bug", bad
