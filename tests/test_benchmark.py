"""The benchmark protocol: the search space per loss, its bad input, and `benchmark:smoke`
end to end through the CLI, killed during its search and resumed."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from cl_research.engine import benchmark
from cl_research.launch import cli
from tests.conftest import REPO


def test_each_loss_searches_its_own_hyperparameters():
  assert benchmark.searched('softmax/none') == ['learning_rate']
  assert benchmark.searched('softmax/center') == ['learning_rate', 'lam', 'alpha']
  assert benchmark.searched('cosface/none') == ['learning_rate', 'scale', 'cosface_margin']
  assert benchmark.searched('arcface/center') == ['learning_rate', 'lam', 'alpha', 'scale',
                                                  'arcface_margin']


@pytest.mark.parametrize('override,message', [
    ('--config.benchmark.losses=("cosface/none",)', "must include the baseline 'softmax/none'"),
    ('--config.benchmark.losses=("softmax/none", "sphereface/none")', "has 'sphereface/none'"),
    ('--config.benchmark.folds=1', 'benchmark.folds=1 must be >= 2'),
    ('--config.benchmark.space.lam=(1.0, 0.1, "log")', 'benchmark.space.lam=(1.0, 0.1'),
    ('--config.benchmark.seeds=(0,)', 'the finals need >= 2 seeds'),
])
def test_bad_benchmark_settings_are_one_line_errors(override, message, tmp_path, capsys):
  workdir = tmp_path / 'bm'
  assert cli.main(['cl_research.run', '--config', 'benchmark:smoke', override,
                   '--workdir', str(workdir)]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1].startswith('error: ') and message in err[-1], err
  assert not workdir.exists()


def finished_trials(db):
  storage = f'sqlite:///{db}'
  try:
    study = optuna.load_study(study_name='softmax/none', storage=storage)
  except KeyError:
    return 0
  return sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials())


@pytest.mark.e2e
def test_benchmark_smoke_resumes_after_a_kill_without_retraining(tmp_path):
  workdir = tmp_path / 'bm'
  cmd = [sys.executable, '-m', 'cl_research.run', '--config', 'benchmark:smoke',
         '--workdir', str(workdir)]
  proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  db = workdir / 'study.db'
  while time.time() < deadline and not (db.exists() and finished_trials(db) >= 1):
    time.sleep(0.5)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert finished_trials(db) >= 1, 'no trial finished before the kill'
  before = {p: os.path.getmtime(p) for p in workdir.glob('trials/*/*/runs/*/result.json')}
  assert before
  done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900,
                        check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  for path, mtime in before.items():  # no finished fold run trained again
    assert os.path.getmtime(path) == mtime, path
  config = cli.load_module(cli.find_experiment('benchmark')).get_config('smoke')
  with open(workdir / 'trials.csv') as f:
    trials = list(csv.DictReader(f))
  for loss in config.benchmark.losses:
    rows = [t for t in trials if t['loss'] == loss]
    assert len(rows) == config.benchmark.trials and all(t['state'] == 'COMPLETE' for t in rows)
  best = json.loads((workdir / 'best_settings.json').read_text())
  assert set(best) == set(config.benchmark.losses) and set(best['softmax/center']) == {
      'learning_rate', 'lam', 'alpha'}
  with open(workdir / 'summary.csv') as f:
    finals = list(csv.DictReader(f))
  assert len(finals) == len(config.benchmark.losses) * len(config.benchmark.seeds)
  assert all(0 <= float(r['test_map_at_r']) <= 1 for r in finals)
  with open(workdir / 'comparisons.csv') as f:
    compared = list(csv.DictReader(f))
  assert {r['setting'] for r in compared} == {'softmax/center'}
  assert {r['family'] for r in compared if r['metric'] == 'test_map_at_r'} == {'declared'}
  for name in ('optimization.png', 'benchmark.png'):
    assert (workdir / name).stat().st_size > 0
