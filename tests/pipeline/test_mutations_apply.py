"""The mutation check (tests/pipeline/mutations.py) stays runnable: each of its wiring mistakes still applies to the
current files exactly once. A mutation whose text drifted would be reported as not applicable, and the count of
mistakes the pipeline tests catch would silently shrink (it did once, when the GPU retry rule changed)."""

from __future__ import annotations

import pytest

from mutations import MUTATIONS, ROOT


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_mutation_still_applies_once(name: str) -> None:
    path, old, new, _kind = MUTATIONS[name]
    text = (ROOT / path).read_text()
    assert text.count(old) == 1, f"{name}: its text is found {text.count(old)} times in {path}: update tests/pipeline/mutations.py"
    assert old != new
