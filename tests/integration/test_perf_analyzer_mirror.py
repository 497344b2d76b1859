"""perf_analyzer's counting, tied to the record of upstream r22.04 (sandbox/upstream/perf-analyzer-r22.04.json).

perf_analyzer counts a request as -b inferences, whatever its tensor holds. Inf2/Trn1 serve a fixed-shape model
(max_batch_size 0, INPUT__0 of 8x3x224x224), for which it is given -b 1: its inferences/s is then requests/s, and
bench must multiply by the 8 images a request carries to report images/s as the client does (issue 22, item 3).
"""

from __future__ import annotations

import subprocess

import pytest

from tests.unit.test_perf_analyzer_counting import MIRROR, _record

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


