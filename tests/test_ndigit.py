"""n-digit MNIST: disjoint numbers, images that spell their number from the right MNIST
split, deterministic generation."""

import dataclasses

import ml_collections
import numpy as np
import pytest

from cl_research.data import ndigit
from tests.conftest import tiny_config


def fake_mnist(n, offset):
  """Digit images whose every pixel encodes (split offset + index): a composed image
  can be traced back to the digits it was built from."""
  labels = np.arange(n) % 10
  ids = offset + np.arange(n)
  images = np.broadcast_to(ids[:, None, None, None], (n, 28, 28, 1)).astype(np.int64)
  return images, labels


def test_numbers_split_70_30_disjoint_and_seeded():
  seen, unseen = ndigit.split_numbers(2, seed=0)
  assert len(seen) == 70 and len(unseen) == 30 and not set(seen) & set(unseen)
  assert set(seen) | set(unseen) == set(range(100))
  again, _ = ndigit.split_numbers(2, seed=0)
  np.testing.assert_array_equal(seen, again)
  assert not np.array_equal(seen, ndigit.split_numbers(2, seed=1)[0])
  assert len(ndigit.split_numbers(3, seed=0)[0]) == 700


def test_images_spell_their_number_from_the_right_split_and_repeat():
  train = fake_mnist(600, 0)
  test = fake_mnist(300, 10_000)
  out = ndigit.make(*train, *test, num_digits=2, seed=3, train_total=7000, test_total=1000)
  images, labels = out['train']
  assert images.shape == (70 * 100, 28, 56, 1)
  assert set(labels.tolist()) == set(out['seen'])
  assert np.all(np.bincount(labels, minlength=100)[list(out['seen'])] == 100)
  for image, number in zip(images[:200], labels[:200]):
    left, right = image[0, 0, 0], image[0, 28, 0]  # the digit images' ids
    assert left < 10_000 and right < 10_000  # training digits only
    assert (train[1][left], train[1][right]) == (number // 10, number % 10)
  test_images, test_labels = out['test']
  assert set(test_labels.tolist()) == set(range(100))  # seen and unseen numbers
  ids = test_images[:, 0, ::28, 0]
  assert np.all(ids >= 10_000)  # test digits only
  np.testing.assert_array_equal(test[1][ids - 10_000], ndigit.digits_of(test_labels, 2))
  again = ndigit.make(*train, *test, num_digits=2, seed=3, train_total=7000, test_total=1000)
  np.testing.assert_array_equal(again['train'][0], images)
  np.testing.assert_array_equal(again['test'][1], test_labels)


def test_class_disjoint_splits_partition_the_training_classes():
  from cl_research.data import splits  # pylint: disable=import-outside-toplevel
  seen, unseen = ndigit.split_numbers(2, seed=0)
  split = splits.make(seen, unseen, num_folds=4, seed=1)
  assert sorted(c for f in split.folds for c in f) == sorted(split.train)
  assert {len(f) for f in split.folds} <= {17, 18} and not set(split.train) & set(split.test)
  trained, scored = split.fold(2)
  assert set(trained) | set(scored) == set(split.train) and not set(trained) & set(scored)
  assert split == splits.make(seen, unseen, num_folds=4, seed=1)  # seeded
  assert splits.halves(196) == (tuple(range(98)), tuple(range(98, 196)))
  with pytest.raises(ValueError, match='overlap'):
    splits.make((1, 2, 3), (3, 4), 2, 0)
  with pytest.raises(ValueError, match=r'num_folds=5 must be in \[2, 3\]'):
    splits.make((1, 2, 3), (4,), 5, 0)


def test_ndigit_mnist_loads_with_its_unseen_numbers_held_out():
  from cl_research import data  # pylint: disable=import-outside-toplevel
  from tests.conftest import tiny_config  # pylint: disable=import-outside-toplevel
  config = tiny_config(**{'data.name': 'ndigit_mnist', 'data.source': 'bundled',
                          'data.num_test': 0, 'data.ndigit_train_images': 7000,
                          'data.ndigit_test_images': 10_000})
  ds = data.load(config.data)
  seen, unseen = ndigit.split_numbers(2, 0)
  assert ds.num_classes == 100 and ds.class_names[7] == '07'
  assert ds.holdout_classes == tuple(unseen) and ds.image_shape == (28, 56, 1)
  assert set(ds.train_labels.tolist()) == set(seen.tolist()) and len(ds.train_labels) == 7000
  assert set(ds.test_labels.tolist()) == set(range(100))
  assert '2-digit numbers composed from MNIST' in ds.detail
  run = data.for_config(ds, config.data)
  assert run.holdout_classes == tuple(unseen)


@pytest.mark.e2e
def test_ndigit_mnist_trains_end_to_end_through_the_cli(tmp_path):
  import csv  # pylint: disable=import-outside-toplevel
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel

  from tests.conftest import REPO  # pylint: disable=import-outside-toplevel
  proc = subprocess.run(
      [sys.executable, '-m', 'cl_research.run', '--config', 'sweep:smoke',
       '--config.data.name=ndigit_mnist', '--config.data.source=bundled',
       '--config.data.ndigit_train_images=7000', '--config.data.num_test=2000',
       '--config.sweep.lam=(0.0, 0.1)', '--config.sweep.feature_size=(2,)',
       '--workdir', str(tmp_path / 'nd')],
      cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(tmp_path / 'nd' / 'summary.csv') as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 2 and all(r['status'] == 'complete' for r in rows)
  for r in rows:  # pairs and identification of the 30 unseen numbers
    assert r['holdout'] == '' and r['verification_accuracy'] != ''
    assert r['openset_rank1'] != '' and int(r['openset_nonmated_probes']) > 0
    assert '30 unseen' in r['data_detail']


@pytest.mark.parametrize('name, label_key, num_classes', [
    ('caltech_birds2011', '', 200), ('cars196', '', 196),
    ('stanford_online_products', 'class_id', 22_634)])  # both splits' products
def test_reality_check_datasets_split_their_classes_in_halves(monkeypatch, tmp_path, name,
                                                              label_key, num_classes):
  """CUB-200-2011, Cars196, Stanford Online Products through their tfds builders (mock
  data: the real ones need a download): images of many sizes brought to 64 x 64, the
  first half of the classes trained on in validation folds, the second half tested."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

  from cl_research import data  # pylint: disable=import-outside-toplevel
  from cl_research.engine import benchmark  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(data, 'network_reachable', lambda url: True)
  config = tiny_config(**{'data.name': name, 'data.source': 'tfds', 'data.num_test': 0,
                          'data.data_dir': str(tmp_path), 'data.label_key': label_key})
  with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
    dataset = data.load(config.data)
  assert dataset.num_classes == num_classes
  assert dataset.train_images.shape[1:3] == dataset.test_images.shape[1:3] == (64, 64)
  total = len(dataset.train_labels) + len(dataset.test_labels)
  pooled, split = benchmark.class_split(dataset, ml_collections.ConfigDict(
      {'folds': 3, 'split_seed': 0}))
  half = num_classes // 2
  assert split.train == tuple(range(half)) and split.test == tuple(range(half, num_classes))
  assert sorted(c for fold in split.folds for c in fold) == list(split.train)
  assert len(pooled.train_labels) + len(pooled.test_labels) == total  # every image, once
  assert pooled.train_labels.max() < half <= pooled.test_labels.min()


def test_splits_that_are_class_disjoint_already_keep_their_classes():
  """Stanford Online Products' tfds splits hold different products: its test split's
  classes are the unseen ones, whatever their number."""
  from cl_research.engine import benchmark  # pylint: disable=import-outside-toplevel
  from tests.conftest import synthetic_dataset  # pylint: disable=import-outside-toplevel
  dataset = synthetic_dataset()
  train, test = dataset.train_labels < 6, dataset.test_labels >= 6
  dataset = dataclasses.replace(
      dataset, train_images=dataset.train_images[train], train_labels=dataset.train_labels[train],
      test_images=dataset.test_images[test], test_labels=dataset.test_labels[test])
  pooled, split = benchmark.class_split(dataset, ml_collections.ConfigDict(
      {'folds': 2, 'split_seed': 0}))
  assert split.test == (6, 7, 8, 9) and split.train == (0, 1, 2, 3, 4, 5)
  np.testing.assert_array_equal(pooled.test_labels, dataset.test_labels)


def test_a_label_that_is_not_a_class_label_feature_is_one_clear_error(monkeypatch, tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

  from cl_research import data  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(data, 'network_reachable', lambda url: True)
  config = tiny_config(**{'data.name': 'stanford_online_products', 'data.source': 'tfds',
                          'data.data_dir': str(tmp_path)})
  with tfds.testing.mock_data(num_examples=2, policy=tfds.testing.MockPolicy.USE_CODE):
    with pytest.raises(data.DataError, match=r"data.label_key='label' is not a class-label "
                       r"feature of stanford_online_products; valid: \['class_id'"):
      data.load(config.data)
