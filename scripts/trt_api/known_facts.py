"""The cross-check of a record against names known independently of the extraction.

``rftrt/engines/data/trt_api/known_facts.json`` says, for names such as ``BuilderFlag.FP16``
(in 8.6/10.x, not in 11.x), ``IBuilderConfig.max_workspace_size`` (only in 8.6) or
``IExecutionContext.execute_async_v3`` (in 8.6/10.x/11.x), in which TensorRT major releases they
exist, and where that is known from. Every extracted record is checked against it; a failure stops
the extraction before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path

from .names import has_name

KNOWN_FACTS = Path(__file__).resolve().parents[2] / "rftrt" / "engines" / "data" / "trt_api" / "known_facts.json"


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object that gives no key twice (``json`` would keep the last one silently)."""
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"keys given twice: {duplicates}")
    return dict(pairs)


def load_known_facts(path: Path = KNOWN_FACTS) -> dict[str, dict[int, bool]]:
    """``{name: {major_version: expected_presence}}`` from `path`; every fact must name its sources."""
    try:
        table = json.loads(path.read_text(), object_pairs_hook=_unique_keys)
    except ValueError as err:
        raise SystemExit(f"{path}: {err}") from None
    facts: dict[str, dict[int, bool]] = {}
    for name, fact in table["facts"].items():
        unknown = [source for source in fact["sources"] if source not in table["sources"]]
        if not fact["sources"] or unknown:
            raise SystemExit(f"{path.name}: {name}: sources {fact['sources']} not all in the sources table")
        facts[name] = {int(major): bool(present) for major, present in fact["present"].items()}
    return facts


def check_known(api: dict, facts: dict[str, dict[int, bool]]) -> list[str]:
    """One line per fact about `api`'s major release that the record contradicts."""
    major = int(api["tensorrt_version"].split(".")[0])
    failures = []
    for name, expect in sorted(facts.items()):
        if major not in expect:
            continue
        got = has_name(api, name)
        if got != expect[major]:
            failures.append(f"{name}: expected {'present' if expect[major] else 'absent'}, "
                            f"found {'present' if got else 'absent'}")
    return failures
