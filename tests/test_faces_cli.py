"""The face experiment through the real command line, its bad inputs, and the classifier
and centers split over devices."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from cl_research.data import faces
from cl_research.launch import cli as run
from tests.conftest import assert_png_drawn
from tests.conftest import REPO
from tests.conftest import run_on_fake_devices

pytestmark = pytest.mark.e2e  # the command line, processes, devices, notebooks


def cli(*args, env=None, timeout=600):
  return subprocess.run([sys.executable, '-m', 'cl_research.run', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=timeout, check=False,
                        env=env)


def test_face_synthetic_end_to_end_through_the_cli(tmp_path):
  workdir = tmp_path / 'face'
  env = dict(os.environ, CL_RESEARCH_DATA=str(tmp_path / 'data'))
  proc = cli('--config', 'face:synthetic,smoke', '--workdir', str(workdir), env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'synthetic_accuracy' in proc.stdout
  for name in ('config.json', 'metadata.json', 'summary.csv'):
    assert (workdir / name).stat().st_size > 0, name
  assert_png_drawn(workdir / 'verification.png')
  with open(workdir / 'summary.csv') as f:
    rows = {(r['head'], r['regularizer']): r for r in csv.DictReader(f)}
  assert set(rows) == {('softmax', 'center'), ('arcface', 'none')}
  for row in rows.values():
    assert row['status'] == 'complete'
    assert 0 <= float(row['synthetic_accuracy']) <= 1
    # 100 pairs: their few dozen negatives cannot estimate VAL at FAR 1e-3 (needs 10,000)
    assert row['synthetic_val_at_far_1e-3'] == '' and 0 < int(row['synthetic_val_negatives']) < 100
    assert 0 <= float(row['synthetic_accuracy_std']) <= 0.5
    result = json.loads((workdir / 'runs' / row['name'] / 'result.json').read_text())
    assert result['num_classes'] == 8 and result['flip'] == 'sum'
    assert result['metadata']['data']['validation'] == {'synthetic': 100}
    lines = [json.loads(l) for l in
             (workdir / 'runs' / row['name'] / 'metrics.jsonl').read_text().splitlines()]
    evaluated = [l['step'] for l in lines if 'synthetic_accuracy' in l]
    assert evaluated == [0, 3, 6]  # at the start, every face_every steps, at the end
    assert all('loss' in l for l in lines if l['step'] in (3, 6))
  # the generated data: an insightface pack and a validation pack
  pack = next((tmp_path / 'data' / 'face_synthetic').iterdir())
  assert {'train.rec', 'train.idx', 'property', 'synthetic.bin'} <= set(os.listdir(pack))
  assert len(faces.RecordIOSource(pack / 'train.rec', pack / 'train.idx')) == 64


def folder_of(root, identities, per_identity=2):
  for name in identities:
    (root / name).mkdir(parents=True)
    for k in range(per_identity):
      Image.new('RGB', (112, 112), (k * 40, 10, 10)).save(root / name / f'{k}.jpg')
  return root


@pytest.mark.parametrize('case', ['missing_pack', 'truncated_rec', 'not_a_bin',
                                  'no_images', 'one_identity', 'bad_depth'])
def test_bad_face_input_is_one_error_line_and_writes_nothing(tmp_path, case, capsys):
  workdir = tmp_path / 'out'
  args = ['--config', 'face:rec,smoke', f'--config.data.rec_dir={tmp_path / "pack"}',
          '--config.data.val_targets=("lfw",)']
  blank = [np.zeros((112, 112, 3), np.uint8)]
  if case in ('truncated_rec', 'not_a_bin'):
    faces.write_pack(tmp_path / 'pack', blank * 2, [0, 1])
    faces.write_bin(tmp_path / 'pack' / 'lfw.bin', blank * 20, [True, False] * 5)
  if case == 'truncated_rec':
    rec = tmp_path / 'pack' / 'train.rec'
    rec.write_bytes(rec.read_bytes()[:-40])
    expected = 'train.rec: truncated'
  elif case == 'not_a_bin':
    (tmp_path / 'pack' / 'lfw.bin').write_text('hello')
    expected = 'lfw.bin: not a pickle'
  elif case == 'missing_pack':
    expected = 'train.rec: no such file'
  elif case in ('no_images', 'one_identity'):
    folder_of(tmp_path / 'imgs', ['someone'], 0 if case == 'no_images' else 2)
    args = ['--config', 'face:folder,smoke', f'--config.data.folder={tmp_path / "imgs"}']
    expected = 'no images' if case == 'no_images' else '1 identities; training a classifier'
  else:
    args = ['--config', 'face:synthetic,smoke', '--config.model.depth=19']
    expected = 'model.depth=19 is not one of 18, 34, 50, 100'
  assert run.main(['cl_research.run', *args, '--workdir', str(workdir)]) == 2
  err = capsys.readouterr().err.strip().splitlines()[-1]
  assert err.startswith('error: ') and expected in err, err
  assert not workdir.exists()


def test_the_classifier_and_centers_split_over_devices_train_as_on_one():
  out = run_on_fake_devices('face_shard_check.py', 4)
  assert out['mesh'] == {'batch': 2, 'classes': 2}
  assert out['centers_spec'] == "P('classes', None)"
  assert out['classifier_spec'] == "P(None, 'classes')"
  assert out['centers_shard_shape'] == [1025, 16]  # 2,050 classes, half on each device
  assert out['centers_diff'] < 1e-5 and out['max_param_diff'] < 1e-5
