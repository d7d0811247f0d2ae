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


def test_a_classifier_over_the_trained_classes_only(tmp_path):
  """`model.classifier_classes=trained`: held-out classes get no classifier output (no
  negatives of the softmax) and no center; the run's logits and centers are recorded at
  the dataset's class ids, so accuracy and the plots read them as they read a full
  classifier's."""
  import numpy as np  # pylint: disable=import-outside-toplevel

  from cl_research import outputs  # pylint: disable=import-outside-toplevel
  from cl_research.engine import tasks  # pylint: disable=import-outside-toplevel
  held = (3, 7)
  runs = {}
  for kind in ('all', 'trained'):
    config = tiny_config(**{'model.classifier_classes': kind, 'sweep.holdout': (held,),
                            'evals.openset.unknown_classes': 0, 'num_steps': 60})
    with config.unlocked():
      del config.evals['openset']
    workdir = tmp_path / kind
    result, = experiment.train_and_evaluate(config, str(workdir), dataset=synthetic_dataset())
    runs[kind] = (result, outputs.load_run(outputs.run_paths(str(workdir), result['name']))[1])
    task = tasks.for_config(config, synthetic_dataset())
    task.prepare(None, [{'holdout': held}])
    classes = task.classifier_classes(held)
    assert classes == (None if kind == 'all' else (0, 1, 2, 4, 5, 6, 8, 9))
  result, features = runs['trained']
  assert result['status'] == 'complete' and result['test_accuracy'] > 0.3  # chance 1/8
  centers = features['centers']
  assert centers.shape[0] == 10 and np.isnan(centers[list(held)]).all()
  assert np.isfinite(np.delete(centers, held, axis=0)).all()
  assert np.isfinite(runs['all'][1]['centers']).all()
