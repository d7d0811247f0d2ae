"""The benchmark protocol: the search (seeded TPE per loss and trial, resume-exact), the
comparisons the question needs, its bad input, and `benchmark:smoke` end to end through
the CLI, killed during its search and resumed."""

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import optuna
import pytest

from cl_research.engine import benchmark
from cl_research.evaluation import statistics
from cl_research.launch import cli
from tests.conftest import REPO


def experiment_config(arg):
  return cli.load_module(cli.find_experiment('benchmark')).get_config(arg)


def test_each_loss_searches_what_its_head_and_regularizer_declare():
  config = experiment_config('cpu')
  assert benchmark.searched('softmax/none', config) == ['learning_rate']
  assert benchmark.searched('softmax/center', config) == ['learning_rate', 'lam', 'alpha']
  assert benchmark.searched('cosface/none', config) == ['learning_rate', 'scale',
                                                        'cosface_margin']
  assert benchmark.searched('arcface/center', config) == ['learning_rate', 'lam', 'alpha',
                                                          'scale', 'arcface_margin']
  assert benchmark.searched('combined/none', config) == ['learning_rate', 'scale', 'm2', 'm3']
  assert benchmark.searched('sphereface/none', config) == ['learning_rate', 'sphereface_m']
  assert benchmark.searched('softmax/ring', config) == ['learning_rate', 'lam']
  assert benchmark.searched('softmax/island', config) == ['learning_rate', 'lam', 'alpha',
                                                          'island_weight']
  with config.unlocked():
    config.centers.mode = 'gradient'  # alpha is ECCV16's update's only
  assert benchmark.searched('softmax/git', config) == ['learning_rate', 'lam', 'git_weight']


def test_every_config_validates_and_the_accelerator_one_has_the_whole_family():
  from cl_research.core import heads, regularizers  # pylint: disable=import-outside-toplevel
  for arg in ('cpu', 'smoke', None):
    benchmark.validate(experiment_config(arg))
  full = experiment_config(None)
  assert {benchmark.split_loss(l)[0] for l in full.benchmark.losses} == set(heads.HEADS)
  assert {benchmark.split_loss(l)[1] for l in full.benchmark.losses} == set(
      regularizers.REGULARIZERS)
  b = full.benchmark
  assert (b.folds, b.trials, len(b.search_seeds), len(b.seeds)) == (4, 50, 3, 10)
  assert full.sweep.feature_size == (128,) and full.model.channels == (32, 64, 128)
  cpu = experiment_config('cpu').benchmark
  assert {'softmax/none', 'softmax/center', 'normface/none', 'cosface/none', 'arcface/none',
          'cosface/center'} <= set(cpu.losses)
  assert cpu.trials >= 16 and cpu.startup_trials < cpu.trials and len(cpu.seeds) == 10
  smoke = experiment_config('smoke').benchmark.losses
  assert 'cosface/center' in smoke and 'softmax/ring' in smoke


class FakeObjective:
  """A smooth score of the unit-cube position of a trial's parameters (no training),
  optionally interrupted (a kill) at a given call."""

  def __init__(self, space, keys, kill_at=None):
    self.space, self.keys, self.kill_at, self.calls = space, keys, kill_at, []

  def unit(self, params):
    out = []
    for k in self.keys:
      low, high, scale = self.space[k]
      if scale == 'log':
        out.append((math.log(params[k]) - math.log(low)) / (math.log(high) - math.log(low)))
      else:
        out.append((params[k] - low) / (high - low))
    return np.array(out)

  def __call__(self, number, params):
    self.calls.append(number)
    if self.kill_at is not None and len(self.calls) == self.kill_at:
      raise KeyboardInterrupt
    return float(-np.sum((self.unit(params) - 0.3) ** 2)), {'fold_scores': [0.0]}


def small_benchmark(**changes):
  b = experiment_config('cpu').benchmark
  with b.unlocked():
    for k, v in changes.items():
      b[k] = v
  return b


def study(tmp_path, name, db='study.db'):
  return optuna.create_study(study_name=name, storage=f'sqlite:///{tmp_path / db}',
                             direction='maximize', load_if_exists=True)


def trial_table(s):
  return [(t.number, t.state.name, t.params, t.value, t.user_attrs.get('proposed_by'))
          for t in s.get_trials()]


def test_a_killed_search_resumed_asks_what_an_uninterrupted_one_asks(tmp_path):
  b = small_benchmark(trials=9, startup_trials=3)
  config = experiment_config('cpu')
  keys = benchmark.searched('cosface/none', config)
  whole = benchmark.run_study(study(tmp_path, 'x', 'whole.db'), b, 'cosface/none', 0, keys,
                              FakeObjective(b.space, keys))
  killed = FakeObjective(b.space, keys, kill_at=6)  # during trial 5, a TPE trial
  with pytest.raises(KeyboardInterrupt):
    benchmark.run_study(study(tmp_path, 'x', 'killed.db'), b, 'cosface/none', 0, keys, killed)
  left = study(tmp_path, 'x', 'killed.db')  # a new process: a new study object
  assert [t.state.name for t in left.get_trials()][-1] == 'RUNNING'
  resumed = FakeObjective(b.space, keys)
  out = benchmark.run_study(left, b, 'cosface/none', 0, keys, resumed)
  assert resumed.calls[0] == 5  # the interrupted trial again, under its own number
  assert trial_table(out) == trial_table(whole)
  assert len(out.get_trials()) == b.trials


def test_losses_of_equal_parameter_count_draw_different_points_and_tpe_proposes(
    tmp_path, monkeypatch):
  b = small_benchmark(trials=8, startup_trials=3)
  config = experiment_config('cpu')
  relative = []
  original = optuna.samplers.TPESampler.sample_relative

  def spy(self, s, trial, space):
    out = original(self, s, trial, space)
    relative.append((trial.number, bool(out)))
    return out
  monkeypatch.setattr(optuna.samplers.TPESampler, 'sample_relative', spy)
  cubes = {}
  for loss in ('cosface/none', 'arcface/none'):  # 3 numbers each
    keys = benchmark.searched(loss, config)
    objective = FakeObjective(b.space, keys)
    s = benchmark.run_study(study(tmp_path, loss), b, loss, 0, keys, objective)
    cubes[loss] = [objective.unit(t.params) for t in s.get_trials()]
    assert [t.user_attrs['proposed_by'] for t in s.get_trials()] == ['startup'] * 3 + ['tpe'] * 5
  for a, c in zip(cubes['cosface/none'], cubes['arcface/none']):
    assert not np.allclose(a, c)
  # TPE's joint (multivariate) model proposed every trial after the startup ones
  assert [(n, made) for n, made in relative] == [(n, n >= 3) for n in range(8)] * 2
  # and the same loss in another search seed draws other points
  keys = benchmark.searched('cosface/none', config)
  objective = FakeObjective(b.space, keys)
  other = benchmark.run_study(study(tmp_path, 'other'), b, 'cosface/none', 1, keys, objective)
  assert not np.allclose(objective.unit(other.get_trials()[0].params), cubes['cosface/none'][0])


def test_the_comparisons_the_question_needs():
  b = experiment_config('cpu').benchmark
  pairs = benchmark.comparison_pairs(b)
  others = [l for l in b.losses if l != 'softmax/none']
  assert [p for p in pairs if p[1] == 'softmax/none'] == [(l, 'softmax/none') for l in others]
  assert {p for p in pairs if p[0] == 'softmax/center' and p[1] != 'softmax/none'} == {
      ('softmax/center', l) for l in others if l != 'softmax/center'}
  assert ('cosface/center', 'cosface/none') in pairs and len(pairs) == len(set(pairs))


def test_comparison_rows_pair_by_search_and_seed_with_relative_margins():
  b = small_benchmark(losses=('softmax/none', 'softmax/center', 'cosface/none'),
                      search_seeds=(0, 1))
  rng = np.random.default_rng(0)
  results = []
  for loss, shift in (('softmax/none', 0.0), ('softmax/center', 0.05), ('cosface/none', 0.04)):
    for search in (0, 1):
      for seed in range(5):
        results.append({'loss': loss, 'search': search, 'seed': seed, 'status': 'complete',
                        'test_map_at_r': 0.8 + shift + 0.01 * seed + 0.002 * rng.normal(),
                        'verification_eer': 0.05 - shift / 10 + 0.001 * rng.normal()})
  rows = benchmark.compare(results, b, ['test_map_at_r', 'verification_eer'])
  by = {(r['setting'], r['baseline'], r['metric']): r for r in rows}
  assert len(by) == 6 and all(r['n'] == 10 for r in rows)  # 2 searches x 5 seeds
  center = by['softmax/center', 'softmax/none', 'test_map_at_r']
  assert center['verdict'] == 'higher' and center['family_size'] == 3
  base = np.mean([r['test_map_at_r'] for r in results if r['loss'] == 'softmax/none'])
  assert math.isclose(center['margin'], 0.1 * (1 - base), rel_tol=1e-9)
  eer = by['softmax/center', 'softmax/none', 'verification_eer']
  base_eer = np.mean([r['verification_eer'] for r in results if r['loss'] == 'softmax/none'])
  assert math.isclose(eer['margin'], 0.1 * base_eer, rel_tol=1e-9) and eer['verdict'] == 'lower'
  assert by['softmax/center', 'cosface/none', 'test_map_at_r']['family'] == 'test_map_at_r'
  for r in rows:  # the MDE at the family's first Holm step is the larger one
    assert r['mde_holm'] > r['mde'] > 0
    assert math.isclose(r['mde_holm'], statistics.minimum_detectable_effect(
        r['sd'], r['n'], alpha=0.05 / 3), rel_tol=1e-9)


@pytest.mark.parametrize('override,message', [
    ('--config.benchmark.losses=("cosface/none",)',
     "benchmark.baseline='softmax/none' must be one of benchmark.losses"),
    ('--config.benchmark.losses=("softmax/none", "softmax/center", "tanface/none")',
     "has 'tanface/none'"),
    ('--config.benchmark.losses=("softmax/none", "softmax/center", "softmax/normalized_center")',
     "regularizer 'normalized_center' with head 'softmax'"),
    ('--config.benchmark.folds=1', 'benchmark.folds=1 must be >= 2'),
    ('--config.benchmark.startup_trials=9', 'benchmark.startup_trials=9 must be in [0, '),
    ('--config.benchmark.space.lam=(1.0, 0.1, "log")', 'benchmark.space.lam=(1.0, 0.1'),
    ('--config.benchmark.space.arcface_margin=(0.1, 2.0, "linear")', 'outside its domain'),
    ('--config.benchmark.space.lam=(0.0, 1.0, "cubic")', "'log' | 'linear' | 'int'"),
    ('--config.benchmark.seeds=(0,)', 'the finals need >= 2 seeds'),
    ('--config.benchmark.search_seeds=(0, 0)', 'benchmark.search_seeds=(0, 0) must be distinct'),
    ('--config.benchmark.equivalence=1.5', 'benchmark.equivalence=1.5 must be in (0, 1)'),
])
def test_bad_benchmark_settings_are_one_line_errors(override, message, tmp_path, capsys):
  workdir = tmp_path / 'bm'
  assert cli.main(['cl_research.run', '--config', 'benchmark:smoke', override,
                   '--workdir', str(workdir)]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1].startswith('error: ') and message in err[-1], err
  assert not workdir.exists()


def test_a_missing_range_names_the_loss_that_needs_it():
  from cl_research import errors  # pylint: disable=import-outside-toplevel
  config = experiment_config('smoke')
  with config.unlocked():
    config.benchmark.losses = ('softmax/none', 'softmax/center', 'softmax/git')
    del config.benchmark.space['git_weight']
  with pytest.raises(errors.ConfigError, match="no range for 'git_weight', which "
                     "softmax/git searches"):
    benchmark.validate(config)


def read_trials(path):
  with open(path) as f:
    return list(csv.DictReader(f))


def finished_trials(db):
  try:
    studies = optuna.get_all_study_names(storage=f'sqlite:///{db}')
    return sum(t.state == optuna.trial.TrialState.COMPLETE
               for name in studies for t in optuna.load_study(
                   study_name=name, storage=f'sqlite:///{db}').get_trials())
  except Exception:  # pylint: disable=broad-except
    return 0  # the database is being created


@pytest.mark.e2e
def test_benchmark_smoke_killed_and_resumed_equals_an_uninterrupted_run(tmp_path, monkeypatch):
  small = ['--config.benchmark.losses=("softmax/none", "softmax/center", "cosface/center", '
           '"softmax/ring")']
  cmd = lambda workdir: [sys.executable, '-m', 'cl_research.run', '--config', 'benchmark:smoke',
                         *small, '--workdir', str(workdir)]
  whole = tmp_path / 'whole'
  done = subprocess.run(cmd(whole), cwd=REPO, capture_output=True, text=True, timeout=900,
                        check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  killed = tmp_path / 'killed'
  proc = subprocess.Popen(cmd(killed), cwd=REPO, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.time() + 600
  db = killed / 'study.db'
  while time.time() < deadline and not (db.exists() and finished_trials(db) >= 4):
    time.sleep(0.5)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert 4 <= finished_trials(db) < 12, 'the kill did not land during the search'
  before = {p: os.path.getmtime(p) for p in killed.glob('trials/*/*/*/runs/*/result.json')}
  assert before
  again = subprocess.run(cmd(killed), cwd=REPO, capture_output=True, text=True, timeout=900,
                         check=False)
  assert again.returncode == 0, again.stderr[-3000:]
  for path, mtime in before.items():  # no finished fold run trained again
    assert os.path.getmtime(path) == mtime, path
  # every trial's parameters and score equal the uninterrupted run's
  assert read_trials(killed / 'trials.csv') == read_trials(whole / 'trials.csv')
  config = experiment_config('smoke')
  trials = read_trials(whole / 'trials.csv')
  for loss in ('softmax/none', 'softmax/center', 'cosface/center', 'softmax/ring'):
    rows = [t for t in trials if t['loss'] == loss]
    assert len(rows) == config.benchmark.trials and all(t['state'] == 'COMPLETE' for t in rows)
    assert [t['proposed_by'] for t in rows] == ['startup', 'startup', 'tpe']
  best = json.loads((whole / 'best_settings.json').read_text())
  assert set(best['cosface/center']['0']) == {'learning_rate', 'lam', 'alpha', 'scale',
                                              'cosface_margin'}
  with open(whole / 'summary.csv') as f:
    finals = list(csv.DictReader(f))
  assert len(finals) == 4 * len(config.benchmark.seeds)
  assert all(0 <= float(r['test_map_at_r']) <= 1 for r in finals)
  with open(whole / 'comparisons.csv') as f:
    compared = list(csv.DictReader(f))
  assert {(r['setting'], r['baseline']) for r in compared} == {
      ('softmax/center', 'softmax/none'), ('cosface/center', 'softmax/none'),
      ('softmax/ring', 'softmax/none'), ('softmax/center', 'cosface/center'),
      ('softmax/center', 'softmax/ring')}
  assert {r['family'] for r in compared if r['metric'] == 'test_map_at_r'} == {'test_map_at_r'}
  for name in ('optimization.png', 'benchmark.png'):
    assert (whole / name).stat().st_size > 0
  # the page a referee reads, from this run: the deviations and every comparison
  import importlib.util  # pylint: disable=import-outside-toplevel
  spec = importlib.util.spec_from_file_location('page', os.path.join(REPO, 'docs',
                                                                     'benchmark_page.py'))
  page = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(page)
  monkeypatch.setattr(page, 'WORKDIR', str(whole))
  monkeypatch.setattr(page, 'DOCS', str(tmp_path / 'docs'))
  monkeypatch.setattr(sys, 'argv', ['benchmark_page.py', '--skip-training'])
  page.main()
  text = (tmp_path / 'docs' / 'benchmark.md').read_text()
  assert '## How this differs from the reality check' in text and 'multivariate TPE' in text
  for setting, against in (('softmax/center', 'softmax/none'),
                           ('softmax/center', 'cosface/center')):
    assert f'| {setting} | {against} | MAP@R | 2 |' in text
  assert '| cosface/center | 0 | 2 + 1 |' in text  # its search: 2 startup, 1 TPE trial
