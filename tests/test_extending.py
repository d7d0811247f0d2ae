"""The README's ways in for one's own code, run as written: the loss in one's own
Flax/optax loop, and a regularizer registered in a config file and swept by the CLI."""

import csv
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

README = pathlib.Path(__file__).resolve().parents[1] / 'README.md'


def readme_block(tag):
  """The fenced code between `<!-- test:tag -->` and `<!-- /test:tag -->` in README.md."""
  text = README.read_text()
  found = re.search(rf'<!-- test:{tag} -->\n```\w*\n(.*?)```\n<!-- /test:{tag} -->', text,
                    re.S)
  assert found, f'README.md has no test:{tag} block'
  return found.group(1)


def test_own_loop_snippet_trains():
  code = readme_block('own-loop')
  assert len([line for line in code.splitlines() if line.strip()]) < 30
  scope = {}
  exec(compile(code, 'README.md:own-loop', 'exec'), scope)  # pylint: disable=exec-used
  aux, centers = scope['aux'], np.asarray(scope['centers_CxD'])
  assert float(aux['accuracy']) >= 0.4  # 10 classes: chance is 0.1
  assert np.isfinite(float(aux['center_loss'])) and float(aux['center_loss']) > 0
  assert np.all(np.linalg.norm(centers, axis=1) > 0)  # every center moved off the origin


@pytest.mark.e2e
def test_registered_regularizer_sweeps_through_the_cli(tmp_path):
  config_file = tmp_path / 'my_config.py'
  config_file.write_text(readme_block('register') + '''

_readme_get_config = get_config


def get_config(arg=None):  # the README's config at the smoke size
  config = _readme_get_config(arg)
  configs.apply_smoke(config)
  config.sweep.lam = (0.0, 1.0)
  return config
''')
  workdir = tmp_path / 'out'
  subprocess.run([sys.executable, '-m', 'cl_research.run', '--config', str(config_file),
                  '--workdir', str(workdir)], check=True, capture_output=True, text=True)
  with open(workdir / 'summary.csv') as f:
    rows = {float(r['lam']): r for r in csv.DictReader(f)}
  assert set(rows) == {0.0, 1.0}
  assert {r['regularizer'] for r in rows.values()} == {'feature_norm'}
  assert {r['status'] for r in rows.values()} == {'complete'}
  norms = {}
  for lam, row in rows.items():
    features = np.load(workdir / 'runs' / row['name'] / 'features.npz')
    norms[lam] = np.linalg.norm(features['test_features'], axis=1).mean()
  assert norms[1.0] < 0.8 * norms[0.0]  # the term reached the gradient: features shrink
