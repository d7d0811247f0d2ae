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


def write_image_folder(root, classes=3, per_class=40, seed=0):
  """root/train/<class>/ and root/test/<class>/ PNGs of learnable toy classes: class k
  is a bright bar at row 4k + 2 on noise."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  for split, n in (('train', per_class), ('test', per_class // 4)):
    for k in range(classes):
      folder = root / split / f'class_{k}'
      folder.mkdir(parents=True)
      for i in range(n):
        image = rng.integers(0, 60, (16, 16), dtype=np.uint8)
        image[4 * k + 2: 4 * k + 4] = 250
        Image.fromarray(image).save(folder / f'{i:03d}.png')


@pytest.mark.e2e
def test_a_labelled_image_folder_trains_through_the_cli(tmp_path):
  write_image_folder(tmp_path / 'images')
  workdir = tmp_path / 'out'
  subprocess.run([sys.executable, '-m', 'cl_research.run', '--config', 'sweep:smoke',
                  '--config.data.name=folder', f'--config.data.folder={tmp_path / "images"}',
                  '--config.data.num_test=0', '--config.sweep.feature_size=(2,)',
                  '--config.sweep.lam=(0.0, 0.1)', '--config.num_steps=60',
                  '--workdir', str(workdir)], check=True, capture_output=True, text=True)
  with open(workdir / 'summary.csv') as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 2 and {r['status'] for r in rows} == {'complete'}
  assert {r['num_train'] for r in rows} == {'120'} and {r['num_test'] for r in rows} == {'30'}
  assert {r['data_detail'] for r in rows} == {'images (train/, test/)'}  # no machine path
  assert all(float(r['test_accuracy']) > 0.6 for r in rows)  # 3 classes: chance is 1/3
  features = np.load(workdir / 'runs' / rows[0]['name'] / 'features.npz')
  assert sorted(set(features['test_labels'].tolist())) == [0, 1, 2]


HEAD_CONFIG = '''
from cl_research import configs
from cl_research.core import heads


def half_margin(features_BxD, classifier, labels_B, hparams, step):
  """CosFace with half its margin on the target: s (cos theta_y - m / 2)."""
  del step
  cos_BxC = heads.cosine_logits(features_BxD, classifier['kernel'])
  return heads.margin_logits(cos_BxC, labels_B, hparams['scale'], m3=hparams['margin'] / 2)


heads.register('half_margin', half_margin, margin_field='toy_margin')


def get_config(arg=None):
  config = configs.digits_config()
  configs.apply_smoke(config)
  config.loss.toy_margin = 0.4
  config.loss.scale = 16.0
  config.sweep.head = ('half_margin',)
  config.sweep.lam = (0.0,)
  config.sweep.feature_size = (2,)
  return config
'''


@pytest.mark.e2e
def test_registered_head_trains_through_the_cli(tmp_path):
  config_file = tmp_path / 'head_config.py'
  config_file.write_text(HEAD_CONFIG)
  workdir = tmp_path / 'out'
  subprocess.run([sys.executable, '-m', 'cl_research.run', '--config', str(config_file),
                  '--workdir', str(workdir)], check=True, capture_output=True, text=True)
  with open(workdir / 'summary.csv') as f:
    (row,) = list(csv.DictReader(f))
  assert (row['head'], row['status']) == ('half_margin', 'complete')
  assert (float(row['scale']), float(row['margin'])) == (16.0, 0.4)
  assert (workdir / 'grid_directions.png').exists()  # an angular head's directions
  bad = subprocess.run([sys.executable, '-m', 'cl_research.run', '--config', str(config_file),
                        '--config.loss.toy_margin=-1', '--workdir', str(tmp_path / 'bad')],
                       capture_output=True, text=True)
  assert bad.returncode == 2 and 'a margin must be a number >= 0' in bad.stderr
