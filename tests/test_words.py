"""The repository describes what is: no words about the project's own past or the
environment of a day in the pages and the code, no commit hash as a table's source."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
WHERE = ['README.md', 'docs', 'cl_research', 'experiments', 'notebooks', 'benchmarks']
HISTORY = [r'\byet\b', r'has been lent', r'\bno internet\b', r'\bthat day\b',
           r'\bat its parent\b', r'prepared earlier', r'\bgrew from\b', r'build machine',
           r'\buntil now\b', r'\bthe code before\b', r'\bcommit [0-9a-f]{7,40}\b',
           r'\bno longer\b']


def texts():
  for where in WHERE:
    path = ROOT / where
    paths = [path] if path.is_file() else sorted(
        p for p in path.rglob('*') if p.suffix in ('.md', '.py', '.ipynb', '.cc', '.txt'))
    for p in paths:
      yield p.relative_to(ROOT), p.read_text(errors='replace')


@pytest.mark.parametrize('pattern', HISTORY)
def test_no_history_words(pattern):
  found = [f'{path}:{text[:m.start()].count(chr(10)) + 1}: {m.group(0)!r}'
           for path, text in texts()
           for m in re.finditer(pattern, text, re.I)]
  assert not found, found


def test_the_checker_sees_a_history_word():
  assert re.search(HISTORY[0], 'not measured there yet', re.I)
