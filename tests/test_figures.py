"""Paper-figure configs end to end through the CLI (small argument), and both notebooks."""

import csv
import json
import os
import subprocess
import sys

from nbclient import NotebookClient
import nbformat
import pytest

from cl_research.configs import sweeps
from cl_research.evaluation import verification
from cl_research.launch import cli as run
from tests.conftest import assert_png_drawn
from tests.conftest import REPO

pytestmark = pytest.mark.e2e  # the command line, processes, devices, notebooks



def run_cli(*args):
  proc = subprocess.run([sys.executable, '-m', 'cl_research.run', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


@pytest.fixture(scope='module')
def figure_runs(tmp_path_factory):
  """fig2/fig3/fig5 smoke runs on bundled MNIST, laid out like runs/docs/<fig>_<dataset>."""
  root = tmp_path_factory.mktemp('figure_runs')
  for fig, grid in (('fig2', ()), ('fig3', ()), ('fig5', FIG5_SMALL_GRID)):
    run_cli('--config', f'{fig}:mnist,smoke', '--config.data.source=bundled', *grid,
            '--workdir', str(root / f'{fig}_mnist'))
  return root


# A corner of Fig. 5's two grids (3 lambdas at alpha 0.5, 2 alphas at lambda 0.003, one
# point shared): the figure code on 4 runs rather than the paper's 23.
FIG5_SMALL_GRID = ('--config.sweep.lam=(0.0, 0.003, 0.1)', '--config.sweep_extra.alpha=(0.1, 0.5)')


def summary(workdir):
  with open(workdir / 'summary.csv') as f:
    return list(csv.DictReader(f))


def test_fig2_is_softmax_only_with_train_and_test_panels(figure_runs):
  rows = summary(figure_runs / 'fig2_mnist')
  assert [float(r['lam']) for r in rows] == [0.0]
  assert rows[0]['regularizer'] in ('center', 'none') and rows[0]['status'] == 'complete'
  assert rows[0]['train_accuracy'] != '' and rows[0]['test_accuracy'] != ''
  from PIL import Image  # pylint: disable=import-outside-toplevel
  path = figure_runs / 'fig2_mnist' / 'fig2.png'
  assert_png_drawn(path, 600, 250)
  with Image.open(path) as image:  # two panels side by side: train and test
    assert image.size[0] > 1.5 * image.size[1], image.size


def test_fig3_has_the_papers_lambdas_metrics_and_feature_evolution(figure_runs):
  workdir = figure_runs / 'fig3_mnist'
  rows = summary(workdir)
  assert sorted(float(r['lam']) for r in rows) == [0.001, 0.01, 0.1, 1.0]
  assert_png_drawn(workdir / 'fig3.png', 600, 400)
  config, _, _ = run.parse(['x', '--config', 'fig3:mnist,smoke'])
  negatives = config.evals.verification.pairs // 2
  for r in rows:
    for key in ('test_knn_accuracy', 'test_silhouette', 'verification_accuracy',
                'verification_auc'):
      assert r[key] != '', key
    for far in (1e-2, 1e-3):  # a TAR is written exactly where the negatives can estimate it
      value = r[f'verification_tar_at_far_{far:.0e}'.replace('e-0', 'e-')]
      assert (value != '') == verification.estimable(far, negatives), (far, negatives, value)
    assert 0 <= float(r['test_knn_accuracy']) <= 1
    run_dir = workdir / 'runs' / r['name']
    assert_png_drawn(run_dir / 'intra_hist.png')
    gif = (run_dir / 'evolution.gif').read_bytes()
    assert gif[:6] in (b'GIF87a', b'GIF89a') and gif.count(b'\x21\xf9\x04') > 2  # frames


def test_fig5_covers_both_grids_once(figure_runs):
  config, _, _ = run.parse(['x', '--config', 'fig5'])
  points = [(p['lam'], p['alpha']) for p in sweeps.expand_runs(config)]
  assert len(points) == len(set(points)) == 23
  assert sum(1 for lam, a in points if a == 0.5) == 12
  assert sum(1 for lam, a in points if lam == 0.003) == 12
  rows = summary(figure_runs / 'fig5_mnist')  # the small grid, through the CLI
  trained = [(float(r['lam']), float(r['alpha'])) for r in rows]
  assert sorted(trained) == [(0.0, 0.5), (0.003, 0.1), (0.003, 0.5), (0.1, 0.5)]
  assert_png_drawn(figure_runs / 'fig5_mnist' / 'fig5.png', 600, 300)


def test_fig3_on_fashion_mnist_from_idx_files(idx_dir, tmp_path):
  workdir = tmp_path / 'fig3_fashion'
  run_cli('--config', 'fig3:fashion_mnist,smoke', f'--config.data.manual_dir={idx_dir}',
          f'--config.data.data_dir={tmp_path / "tfds"}', '--config.evals.verification.pairs=20',
          '--config.sweep.lam=(0.01,)',  # one panel: this test is about the data route
          '--workdir', str(workdir))
  result = json.loads(next((workdir / 'runs').glob('*/result.json')).read_text())
  assert result['data_source'] == 'tfds' and result['num_train'] == 60
  assert_png_drawn(workdir / 'fig3.png', 300, 300)


def test_open_set_pairs_come_only_from_held_out_classes(tmp_path):
  workdir = tmp_path / 'open'
  run_cli('--config', 'default:smoke', '--config.data.source=bundled',
          '--config.data.holdout_classes=(6, 7, 8, 9)', '--workdir', str(workdir))
  result = json.loads(next((workdir / 'runs').glob('*/result.json')).read_text())
  feats = __import__('numpy').load(next((workdir / 'runs').glob('*/features.npz')))
  assert not set(feats['train_labels'].tolist()) & {6, 7, 8, 9}
  assert result['verification_accuracy'] is not None


def execute(notebook, env):
  path = os.path.join(REPO, 'notebooks', notebook)
  nb = nbformat.read(path, as_version=4)
  old = {k: os.environ.get(k) for k in env}
  os.environ.update(env)
  try:
    NotebookClient(nb, timeout=300, kernel_name='python3',
                   resources={'metadata': {'path': os.path.dirname(path)}}).execute()
  finally:
    for k, v in old.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v
  return [o for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', [])]


def test_inspect_sweep_notebook_runs_and_shows_plots(figure_runs):
  outputs = execute('inspect_sweep.ipynb', {'CL_WORKDIR': str(figure_runs / 'fig3_mnist')})
  assert not [o for o in outputs if o.output_type == 'error']
  assert sum('image/png' in o.get('data', {}) for o in outputs) >= 4


def test_inspect_sweep_notebook_on_a_half_finished_sweep(figure_runs, tmp_path):
  partial = tmp_path / 'partial'
  (partial / 'runs').mkdir(parents=True)
  src = figure_runs / 'fig3_mnist' / 'runs'
  for name in sorted(os.listdir(src))[:2]:  # two finished runs, no summary or grid yet
    os.symlink(src / name, partial / 'runs' / name)
  outputs = execute('inspect_sweep.ipynb', {'CL_WORKDIR': str(partial)})
  text = ''.join(o.get('text', '') for o in outputs)
  assert '2 finished of 2 started runs' in text and 'no grid.png: the sweep has not finished' in text


def test_paper_figures_notebook_runs_and_shows_plots(figure_runs):
  outputs = execute('paper_figures.ipynb', {'CL_RUNS': str(figure_runs),
                                            'CL_PAPER': os.path.join(REPO, 'docs', 'paper')})
  assert not [o for o in outputs if o.output_type == 'error']
  assert sum('image/png' in o.get('data', {}) for o in outputs) >= 3
