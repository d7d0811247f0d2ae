"""Sweep groups, devices and processes give the numbers of runs trained alone."""

import csv
import json
import os
import socket
import subprocess
import sys
import tempfile

import jax
import numpy as np
import pytest

from cl_research.data import device_batches as batches
from cl_research.engine import groups
from cl_research.platform import local_processes
from cl_research.platform import runtime
from tests.conftest import device_data
from tests.conftest import make_trainer
from tests.conftest import REPO as ROOT
from tests.conftest import run_on_fake_devices
from tests.conftest import synthetic_dataset
from tests.conftest import tiny_config

pytestmark = pytest.mark.e2e  # the command line, processes, devices, notebooks

DATA = synthetic_dataset(num_train=128)
POINTS = [(0.0, 0.5, 0.05), (0.1, 0.3, 0.02), (1.0, 1.0, 0.05)]  # lam, alpha, learning rate


def train_group(strategy, points, steps=8, **overrides):
  config = tiny_config(**{'parallel.group_strategy': strategy}, **overrides)
  trainer = make_trainer(config)
  states = trainer.init_group([0] * len(points))
  hparams = groups.stack([trainer.hparams(*p) for p in points])
  data = device_data(trainer, DATA, 0)
  return jax.device_get(trainer.train_chunk(states, hparams, data, 0, steps))


@pytest.mark.parametrize('strategy', ['vmap', 'unroll', 'map'])
def test_group_member_equals_the_run_trained_alone(strategy):
  group_states, group_metrics = train_group(strategy, POINTS)
  for i, point in enumerate(POINTS):
    solo_states, solo_metrics = train_group('unroll', [point])
    for a, b in zip(jax.tree.leaves(groups.member(group_states, i)),
                    jax.tree.leaves(groups.member(solo_states, 0))):
      np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(group_metrics['loss'][:, i], solo_metrics['loss'][:, 0],
                               rtol=1e-4)
  # the members really differ (different lam, alpha and learning rate)
  assert not np.allclose(group_states.centers[0], group_states.centers[2])


@pytest.mark.parametrize('shift', [0, 2])
def test_chunks_resume_exactly_where_they_stopped(shift):
  """Also with random shifts: they are drawn from the seed and the step, not the call."""
  overrides = {'data.augment_shift': shift}
  whole, _ = train_group('unroll', POINTS[:1], steps=8, **overrides)
  if shift:
    plain, _ = train_group('unroll', POINTS[:1], steps=8)
    assert not np.allclose(whole.centers, plain.centers)
  config = tiny_config(**overrides)
  trainer = make_trainer(config)
  states = trainer.init_group([0])
  hparams = groups.stack([trainer.hparams(*POINTS[0])])
  data = device_data(trainer, DATA, 0)
  states, _ = trainer.train_chunk(states, hparams, data, 0, 3)
  states, _ = trainer.train_chunk(states, hparams, data, 3, 5)
  for a, b in zip(jax.tree.leaves(jax.device_get(states)), jax.tree.leaves(whole)):
    np.testing.assert_array_equal(a, b)


def test_four_fake_devices_give_the_numbers_of_one():
  out = run_on_fake_devices('devices_check.py', 4)
  assert out['devices'] == 4
  assert out['model_mesh'] == {'model': 4} and out['batch_mesh'] == {'batch': 4}
  # relative to each leaf's scale (see the script for why the batch check is 2 steps)
  assert out['model_axis_max_diff'] < 1e-4
  assert out['batch_axis_max_diff'] < 1e-4


def free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def read_summary(path):
  with open(path) as f:
    return {r['name']: r for r in csv.DictReader(f)}


def test_two_processes_give_the_sweep_of_one(tmp_path):
  """jax.distributed processes give the numbers of one process exactly; local pinned
  processes (one thread each, so other summation orders) give them to float rounding.
  Four steps: training amplifies last-bit differences, to about 1% of the smoke net's
  features after 20 steps."""
  common = [sys.executable, '-m', 'cl_research.run', '--config', 'sweep:smoke',
            '--config.sweep.lam=(0.0, 1.0)', '--config.sweep.feature_size=(2,)',
            '--config.data.source=bundled', '--config.model.kernels=xla',
            '--config.num_steps=4']
  env = dict(os.environ, PYTHONPATH=ROOT)
  single = subprocess.run(common + [f'--workdir={tmp_path / "one"}'], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
  assert single.returncode == 0, single.stderr[-2000:]
  port = free_port()
  procs = [subprocess.Popen(
      common + [f'--workdir={tmp_path / "two"}', '--config.parallel.distributed=True',
                f'--config.parallel.coordinator_address=localhost:{port}',
                '--config.parallel.num_processes=2', f'--config.parallel.process_id={i}'],
      env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  procs.append(subprocess.Popen(
      common + [f'--workdir={tmp_path / "local"}', '--config.parallel.local_processes=2'],
      env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  outs = [p.communicate(timeout=600) for p in procs]
  assert [p.returncode for p in procs] == [0, 0, 0], ''.join(o[1][-1500:] for o in outs)
  one = read_summary(tmp_path / 'one' / 'summary.csv')
  two, local = (read_summary(tmp_path / w / 'summary.csv') for w in ('two', 'local'))
  assert sorted(one) == sorted(two) == sorted(local) and len(one) == 2
  for name, row in one.items():
    for key in ('status', 'test_accuracy', 'test_intra_inter', 'final_loss'):
      assert two[name][key] == row[key], (name, key)
      assert local[name][key] == row[key] if key == 'status' else np.isclose(
          float(local[name][key]), float(row[key]), rtol=1e-4), (name, key)
  # each process trained its own groups: both wrote run folders, only process 0 the plots
  meta = [json.loads((tmp_path / 'two' / 'runs' / n / 'result.json').read_text())
          for n in two]
  assert {m['metadata']['process_count'] for m in meta} == {2}
  assert (tmp_path / 'two' / 'grid.png').exists()
  meta = [json.loads((tmp_path / 'local' / 'runs' / n / 'result.json').read_text())
          ['metadata'] for n in local]
  assert {m['runtime']['local_processes'] for m in meta} == {2}
  assert {m['local_process']['index'] for m in meta} == {0, 1}
  assert {tuple(m['local_process']['cores']) for m in meta} == {
      tuple(c) for c in local_processes.core_sets(2)}
  assert (tmp_path / 'local' / 'grid.png').exists()


def test_core_sets_split_the_cores_without_overlap(monkeypatch):
  monkeypatch.setattr(local_processes, 'available_cores', lambda: [0, 1, 2, 3, 4, 5])
  assert local_processes.core_sets(1) == [[0, 1, 2, 3, 4, 5]]
  assert local_processes.core_sets(4) == [[0, 1], [2, 3], [4], [5]]
  assert local_processes.core_sets(8) == [[0], [1], [2], [3], [4], [5], [0], [1]]
  def processes(value, num_groups):
    config = tiny_config(**{'parallel.local_processes': value, 'model.kernels': 'xla'})
    return runtime.resolve(config).for_groups(num_groups).local_processes
  assert processes(3, num_groups=10) == 3
  assert processes(3, num_groups=2) == 2
  assert processes(0, num_groups=10) == 6  # auto on CPU: one per core
  assert processes(0, num_groups=0) == 1


def test_local_processes_are_pinned_to_their_cores(tmp_path):
  count = 3
  local_processes.run('tests.scripts.local_entries:record_cores', str(tmp_path),
                               count)
  for i, cores in enumerate(local_processes.core_sets(count)):
    seen = json.loads((tmp_path / f'{i}.json').read_text())
    assert seen == {'cores': cores, 'affinity': cores, 'omp_threads': str(len(cores))}


def test_a_failed_local_process_stops_the_others(tmp_path, monkeypatch):
  monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
  with pytest.raises(local_processes.LocalProcessError, match='process 1 of 2 failed .exit code 3.'):
    local_processes.run('tests.scripts.local_entries:second_fails', None, 2)
  assert not (tmp_path / 'survived').exists()
  assert not list(tmp_path.iterdir())  # the payload's folder is gone


def test_batches_follow_the_reference_order_whatever_the_steps_per_call():
  """One step per program and 5-step scans cross epoch boundaries alike (4 steps per
  epoch here) and see the batches `batch_indices_at` defines."""
  config = tiny_config()
  trainer = make_trainer(config)
  data = device_data(trainer, DATA, 3)
  for step in (0, 3, 4, 9):
    perm = data.permutation(step // data.steps_per_epoch)
    expected = batches.batch_indices_at(batches.data_key_of(3), step, 128, config.batch_size)
    start = (step % data.steps_per_epoch) * config.batch_size
    np.testing.assert_array_equal(perm[start:start + config.batch_size], expected)
  results = []
  for per_call in (1, 5):
    config.parallel.steps_per_call = per_call
    trainer = make_trainer(config)
    data = device_data(trainer, DATA, 3)
    states = trainer.init_group([0])
    hparams = groups.stack([trainer.hparams(*POINTS[1])])
    results.append(jax.device_get(trainer.train_chunk(states, hparams, data, 0, 11)))
  for a, b in zip(jax.tree.leaves(results[0]), jax.tree.leaves(results[1])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_group_of_three_margins_equals_three_solo_runs():
  config = tiny_config(**{'loss.head': 'arcface', 'loss.regularizer': 'none',
                          'parallel.group_strategy': 'vmap'})
  trainer = make_trainer(config)
  data = device_data(trainer, DATA, 0)
  margins = (0.1, 0.3, 0.5)
  hparams = [trainer.hparams(0.0, None, scale=16.0, margin=m) for m in margins]
  group, _ = trainer.train_chunk(trainer.init_group([0] * 3), groups.stack(hparams), data, 0, 6)
  for i in range(3):
    solo, _ = trainer.train_chunk(trainer.init_group([0]), groups.stack([hparams[i]]), data,
                                  0, 6)
    for a, b in zip(jax.tree.leaves(groups.member(group, i)),
                    jax.tree.leaves(groups.member(solo, 0))):
      np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
  assert not np.allclose(group.params['classifier']['kernel'][0],
                         group.params['classifier']['kernel'][2])
  compiled = trainer._compiled_chunk(1)  # pylint: disable=protected-access
  size = compiled._cache_size()  # pylint: disable=protected-access
  other = groups.stack([trainer.hparams(0.0, None, scale=30.0, margin=m)
                        for m in (0.2, 0.4, 0.45)])  # new numbers, same shapes
  trainer.train_chunk(trainer.init_group([0] * 3), other, data, 0, 1)
  assert compiled._cache_size() == size  # pylint: disable=protected-access
