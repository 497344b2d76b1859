"""perf_analyzer's counting, tied to the record of upstream r22.04 (sandbox/upstream/perf-analyzer-r22.04.json).

perf_analyzer counts a request as -b inferences, whatever its tensor holds. Inf2/Trn1 serve a fixed-shape model
(max_batch_size 0, INPUT__0 of 8x3x224x224), for which it is given -b 1: its inferences/s is then requests/s, and
bench must multiply by the 8 images a request carries to report images/s as the client does (issue 22, item 3).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from infprov.provision import bench
from infprov.sandbox import provenance

RECORD = "perf-analyzer-r22.04"
MIRROR = Path("/work/.mirror/triton-inference-server+client/repo")

INF2 = bench.ModelConfig(0, "INPUT__0", (8, 3, 224, 224), "OUTPUT__0")  # fixed shape: 8 images in every request
INF1 = bench.ModelConfig(64, "input", (224, 224, 3))  # batches of up to 64 images: -b carries them
FREE = bench.ModelConfig(0, "x", (-1, 3, 224, 224))  # no batching, a free leading dimension: --shape carries them


def _record() -> provenance.Record:
    return provenance.load(RECORD)


# ---------------------------------------------------------------- the record itself


@pytest.mark.skipif(not MIRROR.is_dir(), reason="no git mirror of triton-inference-server/client here")
def test_the_record_ref_and_files_are_upstreams() -> None:
    rec = _record()
    sha = rec.provenance["ref"].split("(")[1].rstrip(")")
    got = subprocess.run(["git", "-C", str(MIRROR), "rev-parse", "r22.04"], capture_output=True, text=True, check=True)
    assert got.stdout.strip() == sha
    for path in rec.provenance["path"].split(", "):
        subprocess.run(["git", "-C", str(MIRROR), "cat-file", "-e", f"{sha}:{path}"], check=True)


# ---------------------------------------------------------------- what infprov reads is what the record says


# ---------------------------------------------------------------- the fix: images/s and requests/s


