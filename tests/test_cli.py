"""The real command line: one end-to-end sweep, and every bad input exits 2 cleanly."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cl_research import configs
from cl_research import data
from cl_research.configs import sweeps
from cl_research.data import idx
from cl_research.engine import checks
from cl_research.engine import loop
from cl_research.engine.tasks import digits
from cl_research.launch import cli as run
from tests.conftest import assert_png_drawn
from tests.conftest import REPO


@pytest.mark.e2e
def test_sweep_smoke_end_to_end_through_the_cli(tmp_path):
  workdir = tmp_path / 'sweep'
  proc = subprocess.run(
      [sys.executable, '-m', 'cl_research.run', '--config', 'sweep:smoke',
       '--config.data.source=bundled', '--workdir', str(workdir)],
      cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'test_accuracy' in proc.stdout and str(workdir) in proc.stdout
  for name in ('config.json', 'summary.csv'):
    assert (workdir / name).stat().st_size > 0, name
  assert_png_drawn(workdir / 'grid.png', 800, 500)
  config = json.loads((workdir / 'config.json').read_text())
  assert config['sweep']['lam'] == [0.0, 0.001, 0.01, 0.1, 1.0]
  with open(workdir / 'summary.csv') as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 10
  assert list(digits.DigitsTask(configs.digits_config()).summary_columns(rows)) == list(rows[0])
  assert {(float(r['lam']), int(r['feature_size'])) for r in rows} == {
      (lam, d) for lam in (0.0, 0.001, 0.01, 0.1, 1.0) for d in (2, 3)}
  for row in rows:
    assert 0.0 <= float(row['test_accuracy']) <= 1.0
    assert row['data_source'] == 'bundled' and os.sep not in row['data_detail']
    run_dir = workdir / 'runs' / row['name']
    for name in ('metrics.jsonl', 'result.json', 'features.npz'):
      assert (run_dir / name).stat().st_size > 0, (row['name'], name)
    assert_png_drawn(run_dir / 'scatter.png')
    result = json.loads((run_dir / 'result.json').read_text())
    assert result['status'] == 'complete' and result['lam'] == float(row['lam'])
    steps = [json.loads(line)['step'] for line in open(run_dir / 'metrics.jsonl')]
    assert steps[-1] == result['num_steps']
    feats = np.load(run_dir / 'features.npz')
    assert feats['test_features'].shape == (result['num_test'], result['feature_size'])
    assert feats['centers'].shape == (10, result['feature_size'])
    assert len(feats['train_labels']) == result['num_train']


BAD_INPUTS = [
    (['--config', 'swep'], "unknown config 'swep'"),
    (['--config', 'sweep:smoke', '--config.task=nope'], "task='nope' is not one of digits"),
    (['--config', 'sweep:smoke', '--config.evals.verification.pairs=5'],
     'evals.verification.pairs=5 must be 0 (off) or >= 20'),
    (['--config', 'sweep:smoke', '--config.evals.openset.enrolment_images=0'],
     'evals.openset.enrolment_images=0 must be >= 1'),
    (['--config', 'sweep:smoke', '--config.data.face_source=rec'],  # a digits config has
     "unknown config field 'data.face_source'"),  # no face fields, and the reverse
    (['--config', 'face:smoke', '--config.grid=(1,2)'], "unknown config field 'grid'"),
    (['--config', 'face:smoke', '--config.evals.verification.flip=bad'],
     "evals.verification.flip='bad' is not one of sum, concat, none"),
    (['--config', 'sweep:smok'], "unknown config argument 'smok'"),
    (['--config', 'sweep:smoke', '--config.sweep.lamda=1'], 'lamda'),
    (['--config', 'sweep:smoke', '--config.sweep.lam=(0.1,-0.1)'], 'sweep.lam has -0.1'),
    (['--config', 'sweep:smoke', '--config.sweep.alpha=(0,)'], 'alpha must be in (0, 1]'),
    (['--config', 'sweep:smoke', '--config.optimizer.clip_scope=head'],
     "optimizer.clip_scope='head' is not one of all, backbone"),
    (['--config', 'sweep:smoke', '--config.centers.momentum=1.0'],
     'centers.momentum=1.0 must be in [0, 1)'),
    (['--config', 'sweep:smoke', '--config.centers.learning_rate=0.0'],
     'centers.learning_rate=0.0 must be > 0'),
    (['--config', 'sweep:smoke', '--config.sweep.alpha=(1.5,)'], 'sweep.alpha has 1.5'),
    (['--config', 'sweep:smoke', '--config.sweep.feature_size=(0,)'], 'feature size must be'),
    (['--config', 'sweep:smoke', '--config.data.name=cifar11'], "data.name='cifar11' is not one of"),
    (['--config', 'sweep:smoke', '--config.data.source=web'], "data.source='web'"),
    (['--config', 'sweep:smoke', '--config.batch_size=many'], 'batch_size'),
    (['--config', 'sweep:smoke', '--config.data.augment_shift=20'], 'data.augment_shift=20'),
    (['--config', 'sweep:smoke', '--config.data.name=fashion_mnist',
      '--config.data.source=bundled'], 'exists only for mnist'),
    (['--config', 'sweep:smoke', '--config.centers.mode=gradient',
      '--config.sweep.alpha=(0.1, 0.5)'], "with centers.mode='gradient' give one value"),
    (['--config', 'sweep:smoke', '--config.data.source=bundled',
      '--config.data.holdout_classes=(9,)'], 'need at least 2 held-out classes'),
    (['--config', 'losses:smoke', '--config.sweep.head=("softmaxx",)'],
     "head 'softmaxx' is not one of softmax, normface"),
    (['--config', 'losses:smoke', '--config.sweep.regularizer=("centre",)'],
     "regularizer 'centre' is not one of none, center"),
    (['--config', 'losses:smoke', '--config.sweep.margin=(-0.1,)'],
     'a margin must be a number >= 0'),
    (['--config', 'losses:smoke', '--config.sweep.scale=(0.0,)'], 'the scale s must be > 0'),
    (['--config', 'losses:smoke', '--config.sweep.head=("arcface",)',
      '--config.sweep.margin=(1.6,)'], 'an angular margin must be in [0, pi/2)'),
    (['--config', 'losses:smoke', '--config.sweep.head=("sphereface",)',
      '--config.sweep.margin=(2.5,)'], 'm must be a positive integer'),
    (['--config', 'sweep:smoke', '--config.sweep.regularizer=("normalized_center",)'],
     "regularizer 'normalized_center' with head 'softmax'"),
    (['--config', 'sweep:smoke', '--config.data.source=bundled', '--config.data.num_train=0',
      '--config.batch_size=1000', '--config.data.holdout_classes=(0, 1, 2, 3, 4, 5, 6, 7)'],
     '800 training examples are left'),
]


# One value outside its domain for every number of config.loss, with the softmax head,
# which uses none of them: each is refused whatever the head.
OUT_OF_DOMAIN = {
    'scale': 0, 'cosface_margin': -0.1, 'arcface_margin': 1.6, 'sphereface_m': 2.5,
    'm1': 0, 'm2': -0.1, 'm3': -0.2, 'sphereface_base': 0, 'sphereface_gamma': -1,
    'sphereface_power': -1, 'sphereface_lambda_min': -1, 'contrastive_delta': 0,
    'git_weight': -1, 'island_weight': -1}


def test_every_loss_number_has_an_out_of_domain_case():
  from cl_research.core import heads, regularizers
  assert set(OUT_OF_DOMAIN) == set(heads.number_domains()) | set(regularizers.NUMBER_DOMAINS)


@pytest.mark.parametrize('field, value', sorted(OUT_OF_DOMAIN.items()))
def test_loss_number_out_of_domain_exits_2_whatever_the_head(field, value, tmp_path, capsys):
  workdir = tmp_path / 'out'
  argv = ['cl_research.run', '--config', 'sweep:smoke', f'--config.loss.{field}={value}',
          '--workdir', str(workdir)]
  assert run.main(argv) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1].startswith(f'error: loss.{field}='), err
  assert not workdir.exists()


@pytest.mark.parametrize('args, message', BAD_INPUTS)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(args, message, tmp_path, capsys):
  workdir = tmp_path / 'out'
  assert run.main(['cl_research.run', *args, '--workdir', str(workdir)]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1].startswith('error: ') and message in err[-1], err
  assert not workdir.exists()


def test_dataset_unavailable_offline_exits_2(monkeypatch, tmp_path, capsys):
  monkeypatch.setattr(data, 'network_reachable', lambda url: False)
  monkeypatch.setattr(idx, 'DEBIAN_FASHION_MNIST_DIR', str(tmp_path / 'missing'))
  workdir = tmp_path / 'out'
  argv = ['cl_research.run', '--config', 'sweep:smoke', '--config.data.name=fashion_mnist',
          f'--config.data.data_dir={tmp_path}', '--workdir', str(workdir)]
  assert run.main(argv) == 2
  assert 'cannot be had offline' in capsys.readouterr().err
  assert not workdir.exists()


def test_bad_input_leaves_an_existing_workdir_untouched(tmp_path, capsys):
  workdir = tmp_path / 'out'
  workdir.mkdir()
  (workdir / 'summary.csv').write_text('earlier results\n')
  argv = ['cl_research.run', '--config', 'sweep:smoke', '--config.sweep.lam=(-1,)',
          '--workdir', str(workdir)]
  assert run.main(argv) == 2
  capsys.readouterr()
  assert os.listdir(workdir) == ['summary.csv']
  assert (workdir / 'summary.csv').read_text() == 'earlier results\n'


@pytest.mark.e2e
def test_losses_smoke_end_to_end_through_the_cli(tmp_path):
  workdir = tmp_path / 'losses'
  proc = subprocess.run(
      [sys.executable, '-m', 'cl_research.run', '--config', 'losses:smoke',
       '--config.data.source=bundled', '--config.sweep.margin=(0.1, 0.3)',
       "--config.sweep.head=('softmax', 'cosface')",
       '--workdir', str(workdir)],
      cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(workdir / 'summary.csv') as f:
    rows = list(csv.DictReader(f))
  runs = {(r['head'], r['regularizer'], r['margin']) for r in rows}
  # softmax has no margin: one run, not one per margin value (SphereFace's integer m is
  # refused with these margins: test_bad_input covers it)
  assert len(rows) == len(runs) == 2 * (1 + 2)
  for row in rows:
    result = json.loads((workdir / 'runs' / row['name'] / 'result.json').read_text())
    assert result['status'] == 'complete' and result['head'] == row['head']
    assert (row['scale'] == '') == (row['head'] == 'softmax')
    assert (row['alpha'] == '') == (row['regularizer'] == 'none')
    assert row['test_angular_intra_inter'] != ''
  for name in ('grid.png', 'grid_directions.png'):
    assert_png_drawn(workdir / name, 500, 400)


def test_gradient_mode_runs_carry_no_alpha():
  config, _, _ = run.parse(['x', '--config', 'seed', '--config.sweep.lam=(0.0, 0.4)'])
  points = sweeps.expand_runs(config)
  assert [p['alpha'] for p in points] == [None, None]
  assert [sweeps.run_name(p) for p in points] == ['lam=0_d=32_seed=0', 'lam=0.4_d=32_seed=0']
  assert sweeps.describe_point(points[1]) == 'lambda=0.4, d=32, seed=0'


def test_config_by_path_with_argument_and_default_workdir():
  path = os.path.join(REPO, 'experiments', 'sweep.py')
  config, workdir, _ = run.parse(['x', f'--config={path}:smoke', '--config.sweep.lam=(0, 1)'])
  assert config.num_steps == 20 and tuple(config.sweep.lam) == (0, 1)
  assert workdir == os.path.join('runs', 'sweep_smoke')


@pytest.mark.parametrize('name', run.available_experiments())
def test_every_experiment_validates_names_its_command_and_says_what_it_costs(name):
  config, _, _ = run.parse(['x', '--config', name])
  checks.validate(config)
  module = run.load_module(run.find_experiment(name))
  assert module.__doc__.splitlines()[0] == f'python -m cl_research.run --config {name}'
  assert module.SUMMARY and 'smoke' in module.ARGS
  for arg in module.ARGS:
    checks.validate(run.parse(['x', '--config', f'{name}:{arg}'])[0])
  with pytest.raises(configs.ConfigError, match="unknown config argument 'nope'"):
    module.get_config('nope')


@pytest.mark.parametrize('argv', [[], ['--help'], ['-h'], ['--config', 'sweep', '--help']])
def test_help_and_no_arguments_print_the_usage(argv, capsys):
  assert run.main(['cl_research.run', *argv]) == 0
  out, err = capsys.readouterr()
  assert 'error' not in err and out.startswith('usage: python -m cl_research.run')
  for name in run.available_experiments():
    module = run.load_module(run.find_experiment(name))
    assert f'  {name}' in out and module.SUMMARY in out
  for text in (':smoke', ':full', '--workdir', '--new_workdir', '--config.sweep.lam'):
    assert text in out


@pytest.mark.parametrize('override, message', [
    ('--config.nonexistent=3', "unknown config field 'nonexistent': the config has"),
    ('--config.optimizer.lr=0.1', "did you mean 'optimizer.learning_rate'?"),
    ('--config.sweep.lamda=(1,)', "did you mean 'sweep.lam'?"),
])
def test_an_unknown_field_names_the_valid_fields_and_the_closest(override, message, capsys):
  assert run.main(['cl_research.run', '--config', 'sweep:smoke', override]) == 2
  err = capsys.readouterr().err.strip().splitlines()[-1]
  assert err.startswith('error: ') and message in err, err
  if 'optimizer' in override:
    assert 'learning_rate, lr_decay, lr_decay_at, lr_schedule, momentum' in err


def test_the_progress_bar_says_what_trains():
  points = [{'lam': 0.1, 'feature_size': 3}]
  assert loop.progress_label(points, 2, 5, [0]) == 'lam=0.1 d=3, run 3 of 5, core 0'
  group = [{'lam': 0.0, 'feature_size': 2}, {'lam': 1.0, 'feature_size': 2}]
  assert loop.progress_label(group, 0, 4, None) == 'lam=0,1 d=2, runs 1-2 of 4'
