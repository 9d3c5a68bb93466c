"""The notebooks run top to bottom (headless, with few steps), as a Colab user would run them."""

import os

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

from .conftest import ROOT  # noqa: E402

NOTEBOOKS = os.path.join(ROOT, "notebooks")


def _execute(name: str, monkeypatch, **env):
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.setenv("PYTHONPATH", ROOT)
    notebook = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells), f"{name}: commit it without outputs"
    client = nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": NOTEBOOKS}})
    client.execute()  # raises CellExecutionError naming the cell that failed
    return notebook


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []))


def test_quickstart_runs_and_ends_in_a_hugging_face_model(monkeypatch, tmp_path):
    pytest.importorskip("transformers")
    nb = _execute("quickstart.ipynb", monkeypatch, QUICKSTART_STEPS=20, QUICKSTART_WORKDIR=tmp_path)
    outputs = [_text(c) for c in nb.cells if c.cell_type == "code"]
    assert any("after 20 steps on cpu" in o for o in outputs), outputs
    assert any("image/png" in o.get("data", {})
               for c in nb.cells for o in c.get("outputs", []))  # the loss curve, inline
    assert (tmp_path / "tiny-hf" / "config.json").exists()
    assert outputs[-1].strip()  # transformers generated text from the exported folder


def test_continual_pretraining_extends_the_vocabulary_and_trains_both_runs(monkeypatch, tmp_path):
    nb = _execute("continual_pretraining.ipynb", monkeypatch, CPT_STEPS=15, CPT_WORKDIR=tmp_path)
    outputs = "\n".join(_text(c) for c in nb.cells if c.cell_type == "code")
    assert "pieces added" in outputs and "extended-vocab  loss" in outputs
    for run in ("base-vocab", "extended-vocab"):
        assert (tmp_path / run / "metrics.jsonl").exists()
    assert (tmp_path / "cpt.png").read_bytes().startswith(b"\x89PNG")
