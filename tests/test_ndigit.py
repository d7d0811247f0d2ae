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


def ids_of(images, num_digits):
  """The digit-image ids (`fake_mnist`) each composed image was built from: N x n."""
  return images[:, 0, ::28, 0][:, :num_digits]


def make_fake(num_digits=2, train=6000, test=1000, **sizes):
  train_set, test_set = fake_mnist(train, 0), fake_mnist(test, 100_000)
  sizes = {'train_total': 7000, 'test_total': 3000, 'validation_total': 7000,
           'validation_digits': 1000, **sizes}
  return train_set, test_set, ndigit.make(*train_set, *test_set, num_digits=num_digits,
                                          seed=3, **sizes)


def test_images_spell_their_number_from_disjoint_digit_pools():
  train, test, out = make_fake()
  images, labels = out['train']
  assert images.shape == (70 * 100, 28, 56, 1)
  assert set(labels.tolist()) == set(out['seen'])
  assert np.all(np.bincount(labels, minlength=100)[list(out['seen'])] == 100)
  pools = {name: set(out['pools'][name].tolist()) for name in ('train', 'validation')}
  assert not pools['train'] & pools['validation'] and len(pools['validation']) == 1000
  val_images, val_labels = out['validation']
  test_images, test_labels = out['test']
  used = {'train': ids_of(images, 2), 'validation': ids_of(val_images, 2),
          'test': ids_of(test_images, 2)}
  # by MNIST index: training digits of train and validation from their own pools, test
  # images from MNIST's test digits only
  assert set(used['train'].ravel().tolist()) <= pools['train']
  assert set(used['validation'].ravel().tolist()) <= pools['validation']
  assert used['test'].min() >= 100_000
  for split, ids, split_labels, source in (('train', used['train'], labels, train),
                                           ('validation', used['validation'], val_labels, train),
                                           ('test', used['test'] - 100_000, test_labels, test)):
    np.testing.assert_array_equal(source[1][ids], ndigit.digits_of(split_labels, 2), split)
  assert set(val_labels.tolist()) == set(out['seen'])
  assert set(test_labels[:30 * 100].tolist()) == set(out['unseen'])  # test_unseen first
  assert set(test_labels[30 * 100:].tolist()) == set(out['seen'])


def test_no_digit_image_repeats_within_a_number_and_position():
  _, _, out = make_fake()
  for split in ('train', 'validation', 'test'):
    images, labels = out[split]
    ids = ids_of(images, 2)
    for number in np.unique(labels)[:40]:
      mine = ids[labels == number]
      for position in range(2):
        assert len(set(mine[:, position].tolist())) == len(mine), (split, number, position)


def test_each_split_has_its_own_stream():
  _, _, small = make_fake(train_total=7000)
  _, _, large = make_fake(train_total=14_000)
  assert len(large['train'][1]) == 2 * len(small['train'][1])
  for split in ('test', 'validation'):  # the same whatever the training size
    for a, b in zip(small[split], large[split]):
      np.testing.assert_array_equal(a, b)
  _, _, again = make_fake(train_total=7000)
  np.testing.assert_array_equal(again['train'][0], small['train'][0])


def test_a_pool_too_small_for_the_images_per_number_is_refused():
  with pytest.raises(ValueError, match='need 300 distinct images of each digit; the pool '
                     'has 100 of digit'):
    make_fake(test_total=9000)  # 300 per unseen number from 100 test images per digit


def test_the_benchmark_configs_data_can_estimate_dir_at_fpir_1e_2():
  """Open-set identification's unknown numbers give >= 1,000 non-mated probes (10 false
  accepts at FPIR 1e-2) in benchmark:cpu's data and the accelerator config's."""
  from cl_research.launch import cli  # pylint: disable=import-outside-toplevel
  from cl_research.evaluation import openset  # pylint: disable=import-outside-toplevel
  for arg in ('cpu', None):
    config = cli.load_module(cli.find_experiment('benchmark')).get_config(arg)
    d = config.data
    seen, unseen = ndigit.split_numbers(d.num_digits, d.ndigit_seed)
    per_unseen = ndigit.per_number(d.ndigit_test_images, len(unseen))
    probes = config.evals.openset.unknown_classes * per_unseen
    assert probes * config.evals.openset.fpir >= 10, (arg, probes)
    assert len(unseen) >= config.evals.openset.unknown_classes + 2
    assert ndigit.per_number(d.ndigit_validation_images, len(seen)) * 10 <= (
        d.ndigit_validation_digits)  # the validation pool can serve every number
  # the same count on a real draw of benchmark:cpu's sizes (fake digits of MNIST's sizes)
  config = cli.load_module(cli.find_experiment('benchmark')).get_config('cpu')
  d = config.data
  train, test = fake_mnist(60_000, 0), fake_mnist(10_000, 100_000)
  out = ndigit.make(*train, *test, 2, seed=d.ndigit_seed, train_total=d.ndigit_train_images,
                    test_total=d.ndigit_test_images,
                    validation_total=d.ndigit_validation_images,
                    validation_digits=d.ndigit_validation_digits)
  features = np.eye(100)[out['test'][1]] + 0.01
  result = openset.identification(features, out['test'][1], out['unseen'],
                                  config.evals.openset.unknown_classes, k=5, seed=0, fpir=1e-2)
  assert result['openset_nonmated_probes'] >= 1000
  assert np.isfinite(result['openset_dir_at_fpir_1e-2'])


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
                          'data.ndigit_test_images': 3000,
                          'data.ndigit_validation_images': 7000,
                          'data.ndigit_validation_digits': 1000})
  ds = data.load(config.data)
  seen, unseen = ndigit.split_numbers(2, 0)
  assert ds.num_classes == 100 and ds.class_names[7] == '07'
  assert ds.holdout_classes == tuple(unseen) and ds.image_shape == (28, 56, 1)
  assert set(ds.train_labels.tolist()) == set(seen.tolist()) and len(ds.train_labels) == 7000
  assert set(ds.test_labels.tolist()) == set(range(100))
  assert set(ds.validation_labels.tolist()) == set(seen.tolist())
  assert ds.validation_images.shape == (7000, 28, 56, 1)
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
       '--config.data.ndigit_test_images=3000', '--config.data.ndigit_validation_digits=1000',
       '--config.data.ndigit_validation_images=7000',
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
