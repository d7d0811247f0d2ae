"""`train_and_evaluate` for faces: streamed batches, a face backbone, the face protocols.

A config with `data.name = 'faces'` (`experiments/face.py`) runs here: each point of its
sweep trains alone, with batches from the Grain pipeline (`cl_research.data.stream`) over a
face source (`cl_research.data.faces`), through the same pure `train.train_step` as the
MNIST sweeps (BatchNorm statistics in `TrainState.batch_stats`). Every
`eval.face_every` steps (and at step 0 and the end) the validation packs are embedded,
with their mirror images joined per `eval.flip`, and scored by `eval.protocol`
(`verification.face_pack_metrics`). Outputs as for every experiment: config.json,
metadata.json, summary.csv (with several seeds summary_by_setting.csv and
comparisons.csv), runs/<name>/{metrics.jsonl, result.json}, and verification.png
(accuracy over steps). With `checkpoint_every`, the state and the
pipeline's iterator state are checkpointed together, so a resumed run sees the same
batches.
"""

import functools
import logging
import os
import time

import jax
import numpy as np
import tqdm

from cl_research.core.models import backbones
from cl_research.engine import checkpoints
from cl_research.data import faces
from cl_research import files
from cl_research.engine import groups
from cl_research import outputs
from cl_research.data import stream as pipeline
from cl_research.outputs import plots
from cl_research.outputs import provenance
from cl_research.platform import runtime as runtime_lib
from cl_research.platform import sharding
from cl_research.configs import sweeps
from cl_research.core import step as train
from cl_research.evaluation import verification
from cl_research.data.faces import synthetic

log = logging.getLogger(__name__)

FACE_SOURCES = ('synthetic', 'rec', 'folder', 'tfds')  # data.face_source
SUMMARY_COLUMNS = ('name', 'status', 'diverged_step', 'diverged_quantity', 'head',
                   'regularizer', 'lam', 'alpha', 'scale', 'margin', 'feature_size', 'seed',
                   'model', 'dtype', 'data_detail', 'num_train', 'num_classes', 'num_steps')
TAIL_COLUMNS = ('train_accuracy', 'final_loss', 'final_softmax_loss',
                'final_regularizer_loss', 'images_per_s', 'wall_s')


def open_source(data_config):
  """(the training source, a description) per `data.face_source`; raises FaceDataError."""
  kind = data_config.face_source
  if kind == 'rec' and not data_config.rec_dir:
    raise faces.FaceDataError('data.rec_dir is empty: face:rec reads an insightface pack '
                              '(train.rec, train.idx) from that folder')
  if kind == 'folder' and not data_config.folder:
    raise faces.FaceDataError('data.folder is empty: face:folder reads '
                              'root/<identity>/<image>')
  if kind == 'synthetic':
    folder = synthetic.generate(synthetic_folder(data_config), **synthetic_spec(data_config))
  elif kind == 'rec':
    folder = data_config.rec_dir
  if kind in ('synthetic', 'rec'):
    source = faces.RecordIOSource(os.path.join(folder, 'train.rec'),
                                  os.path.join(folder, 'train.idx'))
    detail = f"{'generated ' * (kind == 'synthetic')}insightface pack {folder}"
  elif kind == 'folder':
    source = faces.ImageFolderSource(data_config.folder)
    detail = f'image folder {data_config.folder}'
  else:
    source = faces.TfdsIdentitySource(data_config.tfds_name, data_config.tfds_split,
                                      data_config.data_dir, data_config.label_key or None)
    detail = f'tfds {data_config.tfds_name}:{data_config.tfds_split}'
  if source.num_classes < 2:
    raise faces.FaceDataError(f'{detail}: {source.num_classes} identities; training a '
                              'classifier needs at least 2')
  return source, f'{detail} ({len(source):,} images, {source.num_classes:,} identities)'


def synthetic_spec(data_config):
  n = data_config.synthetic_identities
  return dict(identities=n, images_per_identity=data_config.synthetic_images,
              val_identities=max(2, n // 2), num_pairs=data_config.synthetic_pairs)


def synthetic_folder(data_config):
  """`data.rec_dir`, or the cache folder of the generated pack's spec."""
  return data_config.rec_dir or synthetic.default_folder(**synthetic_spec(data_config))


def val_dir(data_config):
  """Where the validation packs lie: `data.val_dir`, else the training pack's folder."""
  if data_config.val_dir:
    return data_config.val_dir
  if data_config.face_source == 'synthetic':
    return synthetic_folder(data_config)
  return data_config.rec_dir


def load_val_sets(config):
  """[(name, images_2NxHxWx3 uint8, issame_N)] of `data.val_targets` (`<name>.bin` in
  `data.val_dir`, default the pack's folder) and of LFW's `pairs.txt` if given."""
  size = backbones.INPUT_SIZE[config.model.name]
  sets = [(name, *faces.load_bin(os.path.join(val_dir(config.data), f'{name}.bin'), size))
          for name in config.data.val_targets]
  if config.data.lfw_pairs:
    sets.append(('lfw_pairs', *faces.read_lfw_pairs(config.data.lfw_pairs,
                                                    config.data.lfw_dir, size)))
  for name, _, issame in sets:
    if len(issame) < config.eval.num_folds:
      raise faces.FaceDataError(f'{name}: {len(issame)} pairs, fewer than '
                                f'eval.num_folds={config.eval.num_folds}')
  return sets


def embed(predict_fn, state, images, flip, batch_size):
  """Embeddings of uint8 images (and of their mirror images, joined per `flip`)."""
  def run(uint8_images):
    features, _ = train.in_batches(
        lambda x: predict_fn(state.params, pipeline.normalize(x), state.batch_stats),
        uint8_images, batch_size)
    return features.astype(np.float64)
  own = run(images)
  return verification.with_flip(own, run(images[:, :, ::-1]) if flip != 'none' else None,
                                flip)


def evaluate(predict_fn, state, val_sets, config):
  """{'<pack>_<metric>': value} over the validation packs."""
  out = {}
  for name, images, issame in val_sets:
    embeddings = embed(predict_fn, state, images, config.eval.flip, config.eval.batch_size)
    for k, v in verification.face_pack_metrics(embeddings, issame, config.eval.protocol,
                                                config.eval.num_folds).items():
      out[f'{name}_{k}'] = v
  return out


def train_run(config, workdir, point, source, detail, val_sets, mesh, metadata, progress):
  """Trains one point of the sweep (resuming from its checkpoint) and writes its files."""
  start = time.perf_counter()
  name = sweeps.run_name(point)
  paths = outputs.run_paths(workdir, name).create()
  size = backbones.INPUT_SIZE[config.model.name]
  head, regularizer = point['head'], point['regularizer']
  model = backbones.get_backbone(config.model, point['feature_size'], source.num_classes,
                                 config.model.classifier_bias and head == 'softmax')
  setup = train.make_setup(config, model, head, regularizer)
  # one compiled program: op by op, a BatchNorm network's init takes 20 s on a CPU
  init = functools.partial(train.init_state, setup, size + (3,), source.num_classes,
                           point['feature_size'], config.centers.init_scale, point['seed'])
  state = jax.jit(init)()
  hparams = train.hparams(config, point['lam'], point['alpha'], scale=point['scale'],
                          margin=point['margin'])
  ckpt = checkpoints.GroupCheckpoints(outputs.checkpoint_dir(workdir, name))
  step, states, _ = ckpt.restore(groups.stack([state]), [name], [], 1)
  state = groups.member(states, 0)
  batches = pipeline.iterator(
      pipeline.dataset(source, config.batch_size, point['seed'], size, config.data.flip),
      workers=config.data.workers)
  if step:
    batches.set_state(ckpt.extra)
    log.info('%s: resumed at step %d', name, step)
  shardings = sharding.face_state_shardings(state, mesh)
  if shardings:
    state = jax.device_put(state, shardings)
  step_fn = jax.jit(functools.partial(train.train_step, setup), donate_argnums=0,
                    out_shardings=None if mesh is None else (shardings, None))
  predict_fn = jax.jit(functools.partial(train.predict, model, head))
  run_log = outputs.RunLog(paths.metrics, step)
  if step == 0 and config.eval.face_every:
    run_log.write(0, evaluate(predict_fn, state, val_sets, config))
  scores = {}  # the validation numbers at `step`, once measured
  progress.update(step)
  timed_images, timed_s = 0, 0.0
  while step < config.num_steps:
    tick = time.perf_counter()  # images/s counts the wait for the input batch too
    batch = sharding.put_batch(next(batches), mesh)
    state, aux = step_fn(state, batch, hparams)
    step += 1
    record = {}
    if train.is_due(step, config.log_every, config.num_steps):
      record.update({k: float(v) for k, v in jax.device_get(aux).items()})
    if step > 1:  # the first step compiles
      jax.block_until_ready(state.step)
      timed_images, timed_s = timed_images + config.batch_size, timed_s + (
          time.perf_counter() - tick)
    scores = {}
    if train.is_due(step, config.eval.face_every, config.num_steps):
      scores = evaluate(predict_fn, state, val_sets, config)
      record.update(scores)
    if record:
      run_log.write(step, record)
    progress.update(1)
    if int(state.diverged_at):
      break
    if train.is_due(step, config.checkpoint_every, config.num_steps):
      ckpt.save(step, groups.stack([state]), [name], 1, None, [], extra=batches.get_state())
  if hasattr(batches, 'close'):
    batches.close()
  run_log.close()
  diverged_at = int(state.diverged_at)
  if diverged_at:
    final = {}
  else:
    final = scores or evaluate(predict_fn, state, val_sets, config)
  last = run_log.last
  result = {
      'name': name, **point, 'status': 'diverged' if diverged_at else 'complete',
      'diverged_step': diverged_at or None,
      'diverged_quantity': train.diverged_quantity(state.diverged_code) or None,
      'model': describe_model(config), 'dtype': config.model.dtype, 'data_detail': detail,
      'num_train': len(source), 'num_classes': source.num_classes,
      'num_steps': config.num_steps, 'protocol': config.eval.protocol,
      'flip': config.eval.flip, **final,
      'train_accuracy': last.get('accuracy'), 'final_loss': last.get('loss'),
      'final_softmax_loss': last.get('softmax_loss'),
      'final_regularizer_loss': last.get('regularizer_loss'),
      'images_per_s': round(timed_images / timed_s, 1) if timed_s else None,
      'wall_s': round(time.perf_counter() - start, 2), 'metadata': metadata}
  files.write_json(paths.result, result)
  return result


def describe_model(config):
  """'iresnet50', 'iresnet18 x0.125', 'face_resnet'."""
  m = config.model
  name = f'iresnet{m.depth}' if m.name == 'iresnet' else m.name
  return name + (f' x{m.width:g}' if m.width != 1 else '')


def train_and_evaluate(config, workdir):
  """Every point of `config.sweep` on faces; the results (one dict per run). Raises
  FaceDataError or ConfigError before writing anything."""
  source, detail = open_source(config.data)
  shard = config.parallel.classifier_shard
  if source.num_classes % shard:
    raise faces.FaceDataError(f'{detail}: {source.num_classes} identities do not split '
                              f'over parallel.classifier_shard={shard} devices')
  val_sets = load_val_sets(config)
  runtime = runtime_lib.resolve(config)
  mesh = sharding.face_mesh(config.parallel)
  points = sweeps.expand_runs(config)
  outputs.prepare_workdir(config, workdir)
  metadata = provenance.metadata(config, {
      'name': 'faces', 'source': config.data.face_source, 'detail': detail,
      'num_train': len(source), 'num_classes': source.num_classes,
      'validation': {n: int(len(s)) for n, _, s in val_sets}}, runtime)
  files.write_json(outputs.workdir_file(workdir, 'metadata.json'), metadata)
  results = []
  with tqdm.tqdm(total=len(points) * config.num_steps, unit='step', mininterval=1.0,
                 dynamic_ncols=True) as progress:
    for point in points:
      paths = outputs.run_paths(workdir, sweeps.run_name(point))
      done = outputs.finished_result(paths)
      if done is None:
        progress.set_description(sweeps.describe_point(point))
        done = train_run(config, workdir, point, source, detail, val_sets, mesh, metadata,
                         progress)
      else:
        progress.update(config.num_steps)
      results.append(done)
  metric_columns = sorted({k for r in results for k in r
                           if any(k.startswith(f'{n}_') for n, _, _ in val_sets)})
  outputs.write_csv(outputs.workdir_file(workdir, 'summary.csv'),
                    SUMMARY_COLUMNS + tuple(metric_columns) + TAIL_COLUMNS, results)
  outputs.write_seed_statistics(workdir, config, results,
                                tuple(metric_columns) + TAIL_COLUMNS)
  plots.plot_face_verification(workdir, results, [n for n, _, _ in val_sets],
                               outputs.workdir_file(workdir, 'verification.png'))
  return results
