"""Records of upstream facts, and the only road from them to the sandbox's stand-ins.

A stand-in (the download server's files, the preflight test mirror, the images' apt sources) may present
only what a recorded upstream artifact says. Each record is one JSON file under sandbox/upstream/:

    {"record": "<what it is>",
     "provenance": {"source": "<repository URL or page URL>", "ref": "<branch/tag/commit, or the page's
                    date>", "path": "<file in the repository, or null>", "taken": "<how: the command or
                    the look-up>", "date": "<YYYY-MM-DD it was taken>"},
     "facts": {...}}

Records hold facts (names, refs, hashes, key ids, rules), never upstream code or prose. A test
(tests/unit/test_upstream_records.py) checks every record's provenance and ties each stand-in fact to its record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FOLDER = Path(__file__).resolve().parent / "upstream"
PROVENANCE_KEYS = ("source", "ref", "path", "taken", "date")


class RecordError(ValueError):
    """A record is missing, malformed, or lacks a fact a stand-in asks it for."""


@dataclass(frozen=True)
class Record:
    name: str  # the file's stem
    record: str
    provenance: dict[str, Any]
    facts: dict[str, Any]

    def fact(self, *keys: str) -> Any:
        """facts[k1][k2]...; a missing key is a RecordError naming the record (a stand-in may not guess)."""
        node: Any = self.facts
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                raise RecordError(f"record {self.name} has no fact {'.'.join(keys)}")
            node = node[key]
        return node


def _parse(path: Path) -> Record:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecordError(f"record {path.name} cannot be read: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("facts"), dict) or not isinstance(doc.get("record"), str):
        raise RecordError(f"record {path.name} needs a `record` text and a `facts` object")
    prov = doc.get("provenance")
    if not isinstance(prov, dict) or any(k not in prov for k in PROVENANCE_KEYS):
        raise RecordError(f"record {path.name} needs provenance with {', '.join(PROVENANCE_KEYS)}")
    return Record(path.stem, doc["record"], prov, doc["facts"])


def load(name: str, folder: Path | None = None) -> Record:
    """The record sandbox/upstream/NAME.json (folder: another set of records, as the tests give)."""
    return _parse((folder or FOLDER) / f"{name}.json")


def all_records(folder: Path | None = None) -> list[Record]:
    return [_parse(p) for p in sorted((folder or FOLDER).glob("*.json"))]


def git_refs(repo: str, folder: Path | None = None) -> dict[str, str]:
    """The refs (refs/heads/..., refs/tags/... -> sha) a repository advertised, from its record
    `git-refs-<owner>-<name>` (repo as "owner/name")."""
    rec = load("git-refs-" + repo.replace("/", "-"), folder)
    refs = rec.fact("refs")
    if not isinstance(refs, dict):
        raise RecordError(f"record {rec.name}: refs must be an object of ref -> sha")
    return {str(k): str(v) for k, v in refs.items()}
