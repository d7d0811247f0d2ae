"""Sweeps survive kills, divergence, reruns and bad data; results are deterministic."""

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cl_research import configs
from cl_research import files
from cl_research import outputs
from cl_research.data import idx
from cl_research.engine import experiment
from cl_research.evaluation import evaluators
from cl_research.launch import cli as run
from tests.conftest import REPO as ROOT
from tests.conftest import synthetic_dataset
from tests.conftest import tiny_config
from tests.conftest import write_idx

METRICS = evaluators.metric_keys(configs.digits_config().evals) + ('final_loss',)


def digest(path):
  return hashlib.sha256(open(path, 'rb').read()).hexdigest()


@pytest.mark.e2e
def test_sigkill_mid_run_then_rerun_resumes(tmp_path):
  args = [sys.executable, '-m', 'cl_research.run', '--config', 'sweep:smoke',
          '--config.sweep.lam=(0.0, 0.1)', '--config.sweep.feature_size=(2,)',
          '--config.data.source=bundled', '--config.num_steps=240',
          '--config.checkpoint_every=40', '--config.log_every=20']
  env = dict(os.environ, PYTHONPATH=ROOT)
  killed, clean = tmp_path / 'killed', tmp_path / 'clean'
  first = killed / 'runs' / 'lam=0_alpha=0.5_d=2_seed=0'
  second = killed / 'runs' / 'lam=0.1_alpha=0.5_d=2_seed=0'
  proc = subprocess.Popen(args + [f'--workdir={killed}'], env=env, cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  # kill once the second run has checkpointed step 80 or later and is still training
  while time.time() < deadline and proc.poll() is None:
    saved = [[int(s.name) for s in group.iterdir() if s.name.isdigit()]
             for group in (killed / 'checkpoints').glob('*')]
    if (first / 'result.json').exists() and any(
        steps and 80 <= max(steps) < 240 for steps in saved):
      break
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert (first / 'result.json').exists(), 'the first run should have finished'
  assert not (second / 'result.json').exists(), 'the kill came too late to test resume'
  before = {p.name: digest(p) for p in first.iterdir()}
  rerun = subprocess.run(args + [f'--workdir={killed}'], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert 'resumed at step' in rerun.stderr and '1 finished runs found' in rerun.stderr
  assert {p.name: digest(p) for p in first.iterdir()} == before  # not retrained
  uninterrupted = subprocess.run(args + [f'--workdir={clean}'], env=env, cwd=ROOT,
                                 capture_output=True, text=True, timeout=600)
  assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
  for name in (first.name, second.name):
    a = json.loads((killed / 'runs' / name / 'result.json').read_text())
    b = json.loads((clean / 'runs' / name / 'result.json').read_text())
    assert a['status'] == b['status'] == 'complete'
    assert a['test_accuracy'] == b['test_accuracy']
    assert a['final_loss'] == b['final_loss']
  logged = [json.loads(l)['step'] for l in open(second / 'metrics.jsonl')]
  assert logged == sorted(set(logged)) and logged[-1] == 240  # no repeated steps


@pytest.mark.e2e
@pytest.mark.parametrize('strategy', ['vmap', 'unroll'])
def test_a_diverging_member_leaves_the_others_as_without_it(tmp_path, strategy):
  common = {'optimizer.learning_rate': 0.05, 'parallel.max_group_size': 3,
            'parallel.group_strategy': strategy}
  with_bad = experiment.train_and_evaluate(
      tiny_config(**{'sweep.lam': (0.0, 1e9, 0.1), **common}), str(tmp_path / 'a'),
      dataset=synthetic_dataset())
  without = experiment.train_and_evaluate(
      tiny_config(**{'sweep.lam': (0.0, 0.1), **common}), str(tmp_path / 'b'),
      dataset=synthetic_dataset())
  by_lam = {r['lam']: r for r in with_bad}
  bad = by_lam[1e9]
  assert bad['status'] == 'diverged' and bad['test_accuracy'] is None
  assert bad['diverged_quantity'] in ('loss', 'features', 'centers', 'params')
  assert 1 <= bad['diverged_step'] <= 20
  for r in without:
    for key in METRICS:
      if r[key] is not None:
        assert by_lam[r['lam']][key] == pytest.approx(r[key], rel=1e-4, abs=1e-6), key
  with open(tmp_path / 'a' / 'summary.csv') as f:
    rows = {float(r['lam']): r for r in csv.DictReader(f)}
  assert rows[1e9]['status'] == 'diverged'
  assert rows[1e9]['diverged_step'] == str(bad['diverged_step'])
  assert rows[1e9]['diverged_quantity'] == bad['diverged_quantity']


@pytest.mark.e2e
def test_two_identical_runs_give_identical_results(tmp_path):
  config = tiny_config(**{'optimizer.learning_rate': 0.05})
  a = experiment.train_and_evaluate(config, str(tmp_path / 'a'), dataset=synthetic_dataset())
  b = experiment.train_and_evaluate(config, str(tmp_path / 'b'), dataset=synthetic_dataset())
  for x, y in zip(a, b):
    assert {k: x[k] for k in METRICS} == {k: y[k] for k in METRICS}
  ra = json.loads(next((tmp_path / 'a' / 'runs').iterdir()).joinpath('result.json').read_text())
  assert ra['metadata']['seeds']['init_and_data_order'] == [0]
  assert ra['metadata']['data']['source'] == 'synthetic'
  assert ra['metadata']['backend'] == 'cpu' and ra['metadata']['packages']['jax']


def test_a_write_killed_midway_leaves_the_old_summary(tmp_path):
  path = tmp_path / 'summary.csv'
  outputs.write_summary(str(path), [{'name': 'old', 'status': 'complete'}], METRICS)
  old = path.read_text()

  class Dying(list):
    def __iter__(self):
      yield {'name': 'new', 'status': 'complete'}
      raise KeyboardInterrupt  # a kill in the middle of writing rows

  with pytest.raises(KeyboardInterrupt):
    outputs.write_summary(str(path), Dying(), METRICS)
  assert path.read_text() == old
  assert sorted(os.listdir(tmp_path)) == ['summary.csv']


def test_atomic_write_replaces_whole_files(tmp_path):
  path = str(tmp_path / 'r.json')
  files.write_json(path, {'a': 1.0, 'b': float('nan'), 'c': np.float32(2)})
  assert json.loads(open(path).read()) == {'a': 1.0, 'b': None, 'c': 2.0}
  files.write_json(path, {'a': 2})
  assert json.loads(open(path).read()) == {'a': 2}
  assert os.listdir(tmp_path) == ['r.json']  # no temporary file left beside it


def test_an_interrupted_atomic_write_leaves_the_old_file_whole(tmp_path, monkeypatch):
  """A write that fails before its rename (the process dies mid-write) leaves the
  previous file as it was and no temporary file; the rename is what publishes it."""
  path = str(tmp_path / 'r.json')
  files.write_json(path, {'a': 1})
  renames = []
  real_replace = os.replace

  def replace(src, dst):
    renames.append((os.path.basename(src), os.path.basename(dst)))
    real_replace(src, dst)

  monkeypatch.setattr(os, 'replace', replace)
  files.write_json(path, {'a': 2})
  assert renames and renames[-1][1] == 'r.json' and renames[-1][0].startswith('.tmp-')

  def fail(src, dst):
    raise KeyboardInterrupt('killed before the rename')

  monkeypatch.setattr(os, 'replace', fail)
  with pytest.raises(KeyboardInterrupt):
    files.write_json(path, {'a': 3, 'big': list(range(1000))})
  assert json.loads(open(path).read()) == {'a': 2}
  assert os.listdir(tmp_path) == ['r.json']


@pytest.mark.e2e
def test_a_changed_config_on_an_existing_workdir_is_refused(tmp_path, capsys):
  base = ['run', '--config', 'sweep:smoke', '--config.sweep.lam=(0.0,)',
          '--config.sweep.feature_size=(2,)', '--config.data.source=bundled',
          f'--workdir={tmp_path}']
  assert run.main(base) == 0
  before = {p: digest(tmp_path / p) for p in ('config.json', 'summary.csv')}
  assert run.main(base[:-1] + ['--config.num_steps=30', f'--workdir={tmp_path}']) == 2
  err = capsys.readouterr().err.strip().splitlines()[-1]
  assert 'holds runs of a different config' in err and 'num_steps: 20 -> 30' in err
  assert {p: digest(tmp_path / p) for p in before} == before
  assert run.main(base[:-1] + ['--config.num_steps=30', f'--workdir={tmp_path}',
                               '--new_workdir']) == 0
  assert 'num_steps": 30' in (tmp_path.parent / f'{tmp_path.name}-2' / 'config.json').read_text()


def bad_idx_dir(tmp_path, case):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 255, (40, 28, 28), dtype=np.uint8)
  labels = (np.arange(40) % 10).astype(np.uint8)
  folder = tmp_path / 'idx'
  folder.mkdir()
  if case == 'image size':
    images = images[:, :27, :27]
  if case == 'label range':
    labels[3] = 12
  paths = {k: folder / v for k, v in idx.IDX_FILES.items()}
  for split in ('train', 'test'):
    write_idx(paths[f'{split}_images'], images)
    write_idx(paths[f'{split}_labels'], labels)
  if case == 'truncated':
    import gzip  # pylint: disable=import-outside-toplevel
    raw = gzip.open(paths['train_images']).read()
    with gzip.open(paths['train_images'], 'wb') as f:
      f.write(raw[:-1000])
  return folder


@pytest.mark.parametrize('case, message', [
    ('truncated', 'train-images-idx3-ubyte.gz is truncated'),
    ('image size', 'train-images-idx3-ubyte.gz: images have shape (40, 27, 27)'),
    ('label range', 'train-labels-idx1-ubyte.gz: label 12 out of range'),
])
def test_bad_data_files_exit_2_naming_the_file(tmp_path, capsys, case, message):
  folder = bad_idx_dir(tmp_path, case)
  workdir = tmp_path / 'out'
  code = run.main(['run', '--config', 'sweep:smoke', '--config.data.name=fashion_mnist',
                   f'--config.data.manual_dir={folder}',
                   f'--config.data.data_dir={tmp_path / "tfds"}', f'--workdir={workdir}'])
  assert code == 2
  err = capsys.readouterr().err.strip().splitlines()[-1]
  assert err.startswith('error: ') and message in err, err
  assert not workdir.exists()
