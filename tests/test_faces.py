"""Face data formats, the Grain pipeline, the face backbones and the face protocols."""

import io
import os
import pickle
import struct

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from cl_research.core.models import backbones
from cl_research.data import faces
from cl_research.data import stream as pipeline
from cl_research.data.faces import recordio
from cl_research.evaluation import verification

RNG = np.random.default_rng(0)


def images(n, size=(112, 112)):
  """Smooth random images (JPEG keeps them within a few levels)."""
  small = RNG.integers(0, 256, (n, 4, 4, 3)).astype(np.uint8)
  return [np.asarray(Image.fromarray(s).resize(size[::-1], Image.BILINEAR)) for s in small]


def png_bytes(image):
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format='PNG')
  return buf.getvalue()


def test_a_record_assembled_by_hand_from_the_format_description(tmp_path):
  image = images(1, (8, 6))[0]
  encoded = png_bytes(image)  # lossless, so the pixels must come back exactly
  # payload: uint32 flag 0, float32 label 7, uint64 id 1, uint64 id2 0, then the image
  payload = (b'\x00\x00\x00\x00' + struct.pack('<f', 7.0) + b'\x01' + b'\x00' * 7 +
             b'\x00' * 8 + encoded)
  length = len(payload)
  record = (bytes([0x0a, 0x23, 0xd7, 0xce])  # magic 0xced7230a, little-endian
            + bytes([length & 0xff, (length >> 8) & 0xff, (length >> 16) & 0xff,
                     (length >> 24) & 0x1f])  # continuation flag 0 in the top 3 bits
            + payload + b'\x00' * ((-length) % 4))
  (tmp_path / 'train.rec').write_bytes(record * 2)
  (tmp_path / 'train.idx').write_text(f'0\t0\n1\t{len(record)}\n')
  source = faces.RecordIOSource(tmp_path / 'train.rec', tmp_path / 'train.idx')
  assert len(source) == 2  # record 0's flag is 0: every key is an image
  item = source[1]
  assert item['label'] == 7
  np.testing.assert_array_equal(item['image'], image)


def test_the_writer_makes_a_pack_the_reader_reads_back(tmp_path):
  pics, labels = images(7), [0, 0, 0, 1, 1, 2, 2]
  faces.write_pack(tmp_path, pics, labels)
  source = faces.RecordIOSource(tmp_path / 'train.rec', tmp_path / 'train.idx')
  assert len(source) == 7 and source.num_classes == 3
  assert (tmp_path / 'property').read_text() == '3,112,112'
  for i in range(7):
    item = source[i]
    assert item['label'] == labels[i] and item['image'].shape == (112, 112, 3)
    assert np.abs(item['image'].astype(int) - pics[i]).mean() < 3  # JPEG quality 95
  # record 0 says where the identity ranges start; those say which images are whose
  with open(tmp_path / 'train.rec', 'rb') as f:
    fd = f.fileno()
    head, _, flag = recordio.unpack_payload(recordio.read_record(fd, 0, 'rec'))
    assert flag == 2 and head.tolist() == [8, 11]
    index = recordio.read_index(tmp_path / 'train.idx')
    ranges = [recordio.unpack_payload(recordio.read_record(fd, index[k], 'rec'))[0].tolist()
              for k in (8, 9, 10)]
  assert ranges == [[1, 4], [4, 6], [6, 8]]


def test_a_payload_holding_the_magic_is_split_and_joined_again(tmp_path):
  payload = recordio.HEADER.pack(0, 3.0, 0, 0) + b'abcd' + struct.pack('<I', recordio.MAGIC) + b'xyz'
  framed = recordio.frame(payload)
  flags = [struct.unpack_from('<I', framed, 4)[0] >> 29]
  assert flags == [1]  # the first part ends where the magic stood
  (tmp_path / 'r.rec').write_bytes(framed)
  fd = os.open(tmp_path / 'r.rec', os.O_RDONLY)
  try:
    assert recordio.read_record(fd, 0, 'r.rec') == payload
  finally:
    os.close(fd)


@pytest.mark.parametrize('fault', ['no_idx', 'truncated', 'bad_magic', 'bad_idx_line'])
def test_broken_packs_name_the_file_and_the_fault(tmp_path, fault):
  faces.write_pack(tmp_path, images(2), [0, 1])
  rec, idx = tmp_path / 'train.rec', tmp_path / 'train.idx'
  if fault == 'no_idx':
    idx.unlink()
    expected = 'train.idx: no such index file'
  elif fault == 'truncated':
    rec.write_bytes(rec.read_bytes()[:100])
    expected = 'truncated'
  elif fault == 'bad_magic':
    data = bytearray(rec.read_bytes())
    data[0] ^= 0xff
    rec.write_bytes(bytes(data))
    expected = 'bad magic number'
  else:
    idx.write_text('0\t0\nnot a line\n')
    expected = 'line 2'
  with pytest.raises(faces.FaceDataError, match=expected) as e:
    faces.RecordIOSource(rec, idx)[0]
  assert str(tmp_path) in str(e.value)


def test_load_bin_reads_a_pack_made_as_insightface_makes_it(tmp_path):
  pics = images(6)
  bins = []
  for k, p in enumerate(pics):  # insightface's packer: the files' bytes, read as they are
    path = tmp_path / f'{k}.jpg'
    Image.fromarray(p).save(path, quality=95)
    bins.append(path.read_bytes())
  with open(tmp_path / 'lfw.bin', 'wb') as f:
    pickle.dump((bins, [True, False, True]), f, protocol=pickle.HIGHEST_PROTOCOL)
  loaded, issame = faces.load_bin(tmp_path / 'lfw.bin')
  assert loaded.shape == (6, 112, 112, 3) and loaded.dtype == np.uint8
  assert issame.tolist() == [True, False, True]
  assert np.abs(loaded.astype(int) - np.stack(pics)).mean() < 3
  small, _ = faces.load_bin(tmp_path / 'lfw.bin', (112, 96))
  assert small.shape == (6, 112, 96, 3)


@pytest.mark.parametrize('content, expected', [
    (b'this is not a pickle', 'not a pickle'),
    (pickle.dumps({'a': 1}), 'not a pair'),
    (pickle.dumps(([b'x'] * 3, [True])), '3 images for 1 pairs'),
])
def test_a_bad_validation_pack_names_the_file(tmp_path, content, expected):
  (tmp_path / 'bad.bin').write_bytes(content)
  with pytest.raises(faces.FaceDataError, match=expected) as e:
    faces.load_bin(tmp_path / 'bad.bin')
  assert 'bad.bin' in str(e.value)


def test_image_folders_and_lfw_pairs(tmp_path):
  for name, count in (('alice', 2), ('bob', 3)):
    (tmp_path / name).mkdir()
    for k, p in enumerate(images(count), 1):
      Image.fromarray(p).save(tmp_path / name / f'{name}_{k:04d}.jpg')
  (tmp_path / 'notes.txt').write_text('not an identity')
  source = faces.ImageFolderSource(tmp_path)
  assert source.class_names == ('alice', 'bob') and len(source) == 5
  assert [source[i]['label'] for i in range(5)] == [0, 0, 1, 1, 1]
  (tmp_path / 'pairs.txt').write_text('1\t2\nalice\t1\t2\nalice\t1\tbob\t3\n')
  pair_images, issame = faces.read_lfw_pairs(tmp_path / 'pairs.txt', tmp_path)
  assert pair_images.shape == (4, 112, 112, 3) and issame.tolist() == [True, False]
  empty = tmp_path / 'empty'
  (empty / 'someone').mkdir(parents=True)
  with pytest.raises(faces.FaceDataError, match='no images'):
    faces.ImageFolderSource(empty)


class Numbers:
  """A source whose images say which example they are."""

  def __len__(self):
    return 40

  def __getitem__(self, i):
    return {'image': np.full((4, 4, 3), i, np.uint8), 'label': i}


def test_a_resumed_pipeline_yields_the_same_batches():
  ds = pipeline.dataset(Numbers(), 8, seed=3, size=(4, 4))
  it = pipeline.iterator(ds)
  for _ in range(7):  # past the first epoch (5 batches)
    next(it)
  state = it.get_state()
  expected = [next(it) for _ in range(4)]
  resumed = pipeline.iterator(ds)
  resumed.set_state(state)
  for a, b in zip(expected, [next(resumed) for _ in range(4)]):
    np.testing.assert_array_equal(a['label'], b['label'])
    np.testing.assert_array_equal(a['image'], b['image'])  # the same flips too
  first_epoch = np.concatenate([b['label'] for b in
                                [next(pipeline.iterator(ds)) for _ in range(1)]])
  assert len(set(first_epoch)) == 8
  other_seed = next(pipeline.iterator(pipeline.dataset(Numbers(), 8, seed=4, size=(4, 4))))
  assert other_seed['label'].tolist() != first_epoch.tolist()


def test_each_process_reads_its_own_shard_and_images_are_normalised():
  shards = [pipeline.dataset(Numbers(), 8, seed=0, size=(4, 4), process_index=k,
                             process_count=2) for k in range(2)]
  seen = [np.concatenate([next(it)['label'] for it in [pipeline.iterator(s)]] +
                         [b['label'] for b in [shards[k][j] for j in range(1, 5)]])
          for k, s in enumerate(shards)]
  assert all(len(s) == 20 == len(set(s)) for s in seen)  # batches of 4: 5 per epoch
  assert not set(seen[0]) & set(seen[1]) and set(seen[0]) | set(seen[1]) == set(range(40))
  batch = shards[0][0]
  expected = (batch['label'][:, None, None, None] - 127.5) / 128
  np.testing.assert_allclose(batch['image'], np.broadcast_to(expected, (4, 4, 4, 3)))


@pytest.mark.e2e
def test_iresnet_and_the_eccv16_network_have_the_reference_shapes():
  x = jnp.zeros((2, 112, 112, 3))
  model = backbones.IResNet(depth=18, feature_size=32, num_classes=5, width=0.125)
  variables = jax.jit(model.init)(jax.random.key(0), x)
  assert variables['params']['fc']['kernel'].shape == (64 * 7 * 7, 32)  # 512/8 x 7 x 7
  assert 'scale' not in variables['params']['features']  # BatchNorm1d with scale fixed at 1
  blocks = {k.split('_')[0] for k in variables['params'] if k.startswith('layer')}
  assert len([k for k in variables['params'] if k.startswith('layer')]) == 8  # [2,2,2,2]
  assert blocks == {'layer1', 'layer2', 'layer3', 'layer4'}
  (features, logits), updates = model.apply(
      variables, jax.random.normal(jax.random.key(1), x.shape), train=True,
      mutable=['batch_stats'])
  assert features.shape == (2, 32) and logits.shape == (2, 5)
  moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), variables['batch_stats'],
                       updates['batch_stats'])
  assert all(jax.tree.leaves(moved))  # train mode updates every running statistic
  face = backbones.FaceResNet(num_classes=5)
  shapes = jax.eval_shape(face.init, jax.random.key(0), jnp.zeros((1, 112, 96, 3)))
  convs = [k for k in shapes['params'] if k.startswith(('conv', 'res')) and 'prelu' not in k]
  assert len(convs) == 27 and 'batch_stats' not in shapes
  assert shapes['params']['fc5']['kernel'].shape == (512 * 5 * 4, 512)


def separable_pairs(n=600, d=16, noise=0.3):
  same = np.arange(n) % 2 == 0
  left = RNG.normal(size=(n, d))
  right = np.where(same[:, None], left + noise * RNG.normal(size=(n, d)), RNG.normal(size=(n, d)))
  emb = np.empty((2 * n, d))
  emb[0::2], emb[1::2] = left, right
  return emb, same


@pytest.mark.parametrize('protocol', verification.PROTOCOLS)
def test_the_face_protocols_score_separable_pairs_high_and_noise_at_chance(protocol):
  emb, same = separable_pairs(n=24_000)  # 12,000 negatives: FAR 1e-3 can be estimated
  good = verification.face_pack_metrics(emb, same, protocol)
  noise = verification.face_pack_metrics(RNG.normal(size=emb.shape), same, protocol)
  assert good['accuracy'] > 0.97
  assert abs(noise['accuracy'] - 0.5) < 0.02
  tar = 'val_at_far_1e-3' if protocol == 'insightface' else 'tar_at_far_1e-3'
  assert good[tar] > 0.5 and noise[tar] < 0.01


def test_insightface_threshold_search_matches_a_direct_count():
  emb, same = separable_pairs(noise=1.0)
  unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
  dist = np.sum((unit[0::2] - unit[1::2]) ** 2, axis=1)
  thresholds = np.arange(0, 4, 0.01)
  expected = []
  for k in range(10):  # folds of consecutive pairs
    test = np.zeros(len(same), bool)
    test[k * 60:(k + 1) * 60] = True
    best = max(thresholds, key=lambda t: (np.mean((dist[~test] < t) == same[~test]), -t))
    expected.append(np.mean((dist[test] < best) == same[test]))
  got = verification.insightface_protocol(emb, same)
  assert got['accuracy'] == pytest.approx(np.mean(expected))


def test_flipped_embeddings_are_summed_or_concatenated():
  a, b = np.ones((2, 3)), 2 * np.ones((2, 3))
  assert verification.with_flip(a, b, 'sum').tolist() == [[3.0] * 3] * 2
  assert verification.with_flip(a, b, 'concat').shape == (2, 6)
  assert verification.with_flip(a, b, 'none') is a


def test_tfds_identity_datasets_through_the_data_source_protocol():
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  with tfds.testing.mock_data(num_examples=12):
    source = faces.TfdsIdentitySource('lfw', 'train')
    assert len(source) == 12 and 1 <= source.num_classes <= 12
    item = source[3]
    assert item['image'].shape[-1] == 3 and item['image'].dtype == np.uint8
    assert 0 <= item['label'] < source.num_classes
    assert source.class_names == tuple(sorted(source.class_names))  # names, in order
  with pytest.raises(faces.FaceDataError, match='face:folder'):
    faces.TfdsIdentitySource('vgg_face2')  # not a builder of this tensorflow-datasets
