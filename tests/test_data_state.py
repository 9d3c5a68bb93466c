"""Checkpointed data state: one JSON for all loader shards; the older per-process format is refused."""

import pytest

from llmjp_jax.train.checkpoint import gather_data_state, restore


def test_one_process_gathers_its_own_states():
    assert gather_data_state({"0": {"next_index": 3}}) == {"0": {"next_index": 3}}


def test_older_per_process_iterator_files_are_refused_clearly(tmp_path):
    (tmp_path / "4" / "data_iter").mkdir(parents=True)

    class Manager:
        directory = tmp_path

    with pytest.raises(ValueError, match=r"4 holds the data position in the older per-process format"):
        restore(Manager(), 4, abstract_state=None, data_iter=object())
