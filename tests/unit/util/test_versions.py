"""The order of build versions: releases, pre-releases and nightlies (build metadata) of a release."""

from __future__ import annotations

import random

from lab.util.versions import sorted_versions, version_key

ORDERED = ["1.9.0", "1.10.0", "2.0.0", "2.3.0-beta", "2.3.0-rc.1", "2.3.0-rc.2", "2.3.0-rc.10", "2.3.0",
           "2.3.0+nightly.9", "2.3.0+nightly.20261204", "2.3.0+nightly.20261205", "2.3.1-alpha", "2.3.1",
           "10.0.0"]


def test_versions_sort_as_a_release_engineer_reads_them() -> None:
    shuffled = ORDERED[:]
    random.Random(7).shuffle(shuffled)
    assert sorted_versions(shuffled) == ORDERED


def test_trailing_zeros_do_not_reorder_and_the_text_breaks_the_tie() -> None:
    assert version_key("2.3") < version_key("2.3.0") < version_key("2.3.0+nightly.1")
    assert version_key("2.3")[:3] == version_key("2.3.0")[:3]


def test_nightlies_compare_numbers_as_numbers_and_words_after_numbers() -> None:
    assert sorted_versions(["2.3.0+nightly.10", "2.3.0+nightly.9", "2.3.0+nightly.x"]) == [
        "2.3.0+nightly.9", "2.3.0+nightly.10", "2.3.0+nightly.x"]
