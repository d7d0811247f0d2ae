"""train_and_evaluate in-process: what the notebooks and the CLI share."""

import csv
import json

import pytest

from cl_research.engine import experiment
from tests.conftest import assert_png_drawn
from tests.conftest import synthetic_dataset
from tests.conftest import tiny_config


@pytest.mark.e2e
def test_a_diverging_run_is_marked_and_the_sweep_carries_on(tmp_path):
  config = tiny_config(**{'sweep.lam': (0.0, 1e9), 'optimizer.learning_rate': 0.05})
  results = experiment.train_and_evaluate(config, str(tmp_path), dataset=synthetic_dataset())
  by_lam = {r['lam']: r for r in results}
  assert by_lam[0.0]['status'] == 'complete' and by_lam[0.0]['test_accuracy'] > 0.2  # chance is 0.1
  assert by_lam[1e9]['status'] == 'diverged' and by_lam[1e9]['test_accuracy'] is None
  with open(tmp_path / 'summary.csv') as f:
    rows = {float(r['lam']): r for r in csv.DictReader(f)}
  assert rows[1e9]['status'] == 'diverged' and rows[1e9]['test_accuracy'] == ''
  saved = json.loads((tmp_path / 'runs' / by_lam[1e9]['name'] / 'result.json').read_text())
  assert saved['status'] == 'diverged'
  assert_png_drawn(tmp_path / 'grid.png', 400, 250)
