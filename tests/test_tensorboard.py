"""Live curves: a finished sweep:smoke holds TensorBoard event files that TensorBoard's
own reader lists, with the scalars of metrics.jsonl and the snapshot scatters."""

import json
import pathlib

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from cl_research.launch import cli as run


@pytest.mark.e2e
def test_sweep_smoke_writes_event_files_tensorboard_reads(tmp_path):
  workdir = tmp_path / 'out'
  assert run.main(['cl_research.run', '--config', 'sweep:smoke', '--config.snapshot_every=10',
                   '--workdir', str(workdir)]) == 0
  run_dirs = sorted((workdir / 'runs').iterdir())
  assert len(run_dirs) == 10
  for run_dir in run_dirs:
    assert list(run_dir.glob('events.out.tfevents.*'))
    events = event_accumulator.EventAccumulator(str(run_dir),
                                                size_guidance={'scalars': 0, 'images': 0})
    events.Reload()
    tags = events.Tags()
    assert {'loss', 'softmax_loss', 'regularizer_loss', 'accuracy', 'grad_norm', 'clipped',
            'learning_rate'} <= set(tags['scalars'])
    logged = [json.loads(line) for line in (run_dir / 'metrics.jsonl').read_text().splitlines()]
    expected = [(r['step'], r['loss']) for r in logged if 'loss' in r]
    got = [(e.step, e.value) for e in events.Scalars('loss')]
    assert [s for s, _ in got] == [s for s, _ in expected]
    np.testing.assert_allclose([v for _, v in got], [v for _, v in expected], rtol=1e-6)
    images = events.Images('test_features')
    assert [i.step for i in images] == list(range(10, 10 * (len(images) + 1), 10))
    assert images and images[0].width > 100 and images[0].height > 100


@pytest.mark.e2e
def test_tensorboard_off_writes_no_event_files(tmp_path):
  workdir = tmp_path / 'out'
  assert run.main(['cl_research.run', '--config', 'sweep:smoke', '--config.tensorboard=False',
                   '--config.sweep.lam=(0.1,)', '--config.sweep.feature_size=(2,)',
                   '--workdir', str(workdir)]) == 0
  assert not list(pathlib.Path(workdir).rglob('events.out.tfevents.*'))
