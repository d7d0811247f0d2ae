"""Plots a person reads: titles that wrap whole and say where data came from in words,
legends outside the panels, labelled axes, the grid's scale visible."""

import re

import numpy as np
import pytest

from cl_research import outputs
from cl_research.outputs import plots
from tests.conftest import synthetic_dataset


def test_wrap_breaks_only_between_labelled_values():
  title = ('MNIST, official files (cl_research.data.fetch) via tfds, 10,000 train / 10,000 test\n'
           'lambda=0.001, alpha=0.5, d=2, seed=0: test acc 0.971, intra/inter 0.0323')
  for width in range(30, 90, 7):
    lines = plots.wrap(title, width).split('\n')
    assert ' '.join(lines).replace('  ', ' ') == title.replace('\n', ' ')
    for line in lines:
      assert not re.fullmatch(r'[\d.,]+', line.strip()), (width, line)
      assert len(line) <= width or ', ' not in line, (width, line)


@pytest.fixture
def captured(monkeypatch):
  """The figures `plots.save` would write, kept open for inspection."""
  figures = []
  monkeypatch.setattr(plots, 'save', lambda fig, path, title=None, **kw: figures.append(
      (fig, title)))
  return figures


def run_features(d, seed=0):
  rng = np.random.default_rng(seed)
  labels = np.arange(200) % 10
  feats = rng.normal(size=(200, d)) + 5 * np.eye(10, d)[labels]
  return {'train_features': feats, 'train_labels': labels, 'test_features': feats,
          'test_labels': labels, 'centers': 5 * np.eye(10, d)}


@pytest.mark.parametrize('d, labels', [(2, ('feature 1', 'feature 2')), (3, ('PC1', 'PC2'))])
def test_run_scatter_has_its_legend_outside_and_labelled_axes(captured, d, labels):
  plots.plot_run(run_features(d), 'title', [str(c) for c in range(10)], 'unused.png')
  fig, _ = captured[-1]
  assert fig.legends and all(ax.get_legend() is None for ax in fig.axes)
  assert all((ax.get_xlabel(), ax.get_ylabel()) == labels for ax in fig.axes)


def test_grid_panels_state_their_axis_extent(captured):
  small = run_features(2)
  small = {**small, 'test_features': small['test_features'] / 100}
  cells = {(0, 0): {'features': run_features(2), 'label': 'a'},
           (0, 1): {'features': small, 'label': 'b'}}
  plots.plot_grid(cells, ['d=2'], ['lambda=0', 'lambda=1'], 'grid',
                  [str(c) for c in range(10)], 'unused.png')
  fig, _ = captured[-1]
  extents = [float(re.search(r'axes ±([\d.e+-]+)', ax.get_title()).group(1))
             for ax in fig.axes]
  assert extents[0] > 50 * extents[1] > 0


def test_titles_say_where_the_data_came_from_in_words():
  dataset = synthetic_dataset()
  dataset = type(dataset)(**{**dataset.__dict__, 'location': '/home/someone/data/mnist'})
  point = {'lam': 0.1, 'alpha': 0.5, 'feature_size': 2, 'seed': 0}
  title = outputs.run_title(dataset, point,
                            {'status': 'complete', 'test_accuracy': 0.9,
                             'test_intra_inter': 0.01})
  assert '/home' not in title and 'tfds: tfds' not in title
  assert title.startswith('MNIST, synthetic test data, 256 train / 128 test\n')
