"""The notebooks under notebooks/ run from top to bottom (with a short time limit per solve), and
are committed without outputs."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = ("tour", "checkpointing", "allocation", "fusion", "sweep")


def test_every_notebook_is_listed_and_committed_without_outputs():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)
    for name in NAMES:
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{name}.ipynb has outputs: strip them"


@pytest.mark.parametrize("name", NAMES)
def test_the_notebook_runs_and_concludes_from_its_numbers(name, monkeypatch):
    monkeypatch.setenv("MONET_NOTEBOOK_TIME_LIMIT_S", "2")
    monkeypatch.setenv("MONET_NOTEBOOK_SWEEP_POINTS", "40")
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert not any(o.output_type == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    if name == "tour":
        assert "training ops" in text and "baseline:" in text and "validated True" in text
        assert sum(o.output_type == "display_data" for c in nb.cells if c.cell_type == "code" for o in c.outputs) == 2
    elif name == "sweep":
        assert "40 designs" in text and "Pareto-optimal designs:" in text and "designs on the training front" in text
    else:
        assert text.count("CP-SAT proved") == 2 if name != "fusion" else text.count("CP-SAT proved") == 1
        assert "over the exact answer" in text
