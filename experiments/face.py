"""python -m cl_research.run --config face

  python -m cl_research.run --config face:synthetic      # the same: generated data, CPU
  python -m cl_research.run --config face:rec --config.data.rec_dir=/data/faces_webface_112x112
  python -m cl_research.run --config face:rec,eccv16 --config.data.rec_dir=...
  python -m cl_research.run --config face:folder --config.data.folder=/data/vggface2/train
  python -m cl_research.run --config face:synthetic,smoke   # seconds, for tests

Center loss and the margin heads on faces (cl_research.engine.tasks.faces). The data:
  * `synthetic`: a generated insightface pack (32 procedural identities x 16 images,
    112x112) and a generated validation pack of 400 pairs of 16 unseen identities;
    iResNet-18 at 1/8 width, softmax + center loss (lambda 0.01) and ArcFace (m 0.5 at
    s 16: insightface's s 64 learns too slowly for 100 steps on 32 identities,
    docs/faces.md), 100 steps of 32, about a minute and a half each on 2 CPU cores;
  * `rec`: an insightface pack (`data.rec_dir`: train.rec, train.idx, property and the
    validation packs lfw.bin, cfp_fp.bin, agedb_30.bin);
  * `folder`: `data.folder` as root/<identity>/<image> (VGGFace2's train/, CASIA-WebFace);
  * `vgg_face2`: tfds's vgg_face2 (manual download, prepared as ArrayRecord).
The settings for real data:
  * `insightface` (the default): iResNet-50, ArcFace s 64 m 0.5, no center loss, SGD
    momentum 0.9 at lr 0.02 (one GPU, batch 128) decaying linearly to 0, weight decay
    5e-4 on every parameter, the backbone's gradient clipped at norm 5, every class in
    each step (Partial FC off), bfloat16 convolutions; 77,200 steps = 20 epochs of
    CASIA-WebFace (494k images; set num_steps to 20 x images / batch for another pack);
    insightface's protocol with flipped embeddings summed.
  * `eccv16`: the paper's Face-ResNet (112x96), softmax + center loss lambda 0.008
    (the Caffe release's value; the paper's text says 0.003), alpha 0.5, batch 256, lr 0.1 x0.1 at 16k and 24k of 28k steps, momentum 0.9,
    weight decay 5e-4; the ECCV16 protocol with flipped features concatenated.
docs/faces.md: the formats, what each costs, and what has been run.
"""

from cl_research import configs

SUMMARY = ('faces: iResNet / ECCV16 Face-ResNet, center loss vs ArcFace, face protocols; '
           'face:synthetic ~3 min on CPU, real packs need a GPU')
ARGS = {'synthetic': 'a generated pack and validation pack (offline, CPU)',
        'rec': 'an insightface pack in data.rec_dir',
        'folder': 'an image folder data.folder (root/<identity>/<image>)',
        'vgg_face2': "tfds's vgg_face2 (manual download)",
        'insightface': "insightface's settings (the default for real data)",
        'eccv16': "the paper's settings (Face-ResNet, center loss 0.008)",
        'smoke': 'seconds, a tiny net (tests)'}
DATA = {'synthetic': 'synthetic', 'rec': 'rec', 'folder': 'folder', 'vgg_face2': 'tfds'}


def apply_insightface(c):
  c.model.name, c.model.depth = 'iresnet', 50
  c.model.dtype = 'bfloat16'
  c.sweep.head, c.sweep.regularizer, c.sweep.lam = ('arcface',), ('none',), (0.0,)
  c.loss.scale, c.loss.arcface_margin = 64.0, 0.5
  c.optimizer.learning_rate = 0.02
  c.optimizer.lr_schedule = 'linear'
  c.optimizer.decay_biases = True
  c.optimizer.grad_clip_norm = 5.0
  c.optimizer.clip_scope = 'backbone'  # clip_grad_norm_(backbone.parameters(), 5)
  c.loss.partial_fc_rate = 1.0  # every class: 10k-100k identities fit (docs/faces.md)
  c.batch_size = 128
  c.num_steps = 77_200
  c.evals.verification.protocol, c.evals.verification.flip = 'insightface', 'sum'


def apply_eccv16(c):
  c.model.name = 'face_resnet'
  c.model.classifier_bias = True
  c.sweep.head, c.sweep.regularizer, c.sweep.lam = ('softmax',), ('center',), (0.008,)
  c.sweep.alpha = (0.5,)
  c.optimizer.learning_rate = 0.1
  c.optimizer.lr_decay, c.optimizer.lr_decay_at = 0.1, (16 / 28, 24 / 28)
  c.batch_size = 256
  c.num_steps = 28_000
  c.evals.verification.protocol, c.evals.verification.flip = 'eccv16', 'concat'


def apply_synthetic(c):
  """About a minute and a half a run on 2 CPU cores: iResNet-18 at 1/8 width, 64-D
  embeddings, softmax + center loss and ArcFace on the same batches, validation every
  25 steps."""
  c.model.name, c.model.depth, c.model.width = 'iresnet', 18, 0.125
  c.sweep.feature_size = (64,)
  c.sweep.head, c.sweep.regularizer, c.sweep.lam = ('softmax',), ('center',), (0.01,)
  for axis, value in (('head', 'arcface'), ('regularizer', 'none'), ('lam', 0.0),
                      ('alpha', 0.5), ('feature_size', 64), ('seed', 0)):
    c.sweep_extra[axis] = (value,)
  c.loss.scale, c.loss.arcface_margin = 16.0, 0.5
  c.optimizer.learning_rate = 0.1
  c.optimizer.lr_schedule = 'linear'
  c.batch_size = 32
  c.num_steps = 100
  c.log_every = 10
  c.evals.verification.every = 25
  c.data.val_targets = ('synthetic',)


def get_config(arg=None):
  tokens = configs.parse_arg(arg, ARGS)
  sources = [t for t in tokens if t in DATA]
  if len(sources) > 1:
    raise configs.ConfigError(f'face: one data source, not {sorted(sources)}; valid: '
                              f'{", ".join(DATA)}')
  source = sources[0] if sources else 'synthetic'
  c = configs.face_config()
  c.data.face_source = DATA[source]
  if source == 'synthetic':
    apply_synthetic(c)
  if 'eccv16' in tokens:
    apply_eccv16(c)
  elif source != 'synthetic' or 'insightface' in tokens:
    apply_insightface(c)
  if 'smoke' in tokens:
    c.num_steps, c.log_every, c.evals.verification.every, c.batch_size = 6, 3, 3, 16
    c.model.width = min(c.model.width, 1 / 16)
    c.data.synthetic_identities, c.data.synthetic_images, c.data.synthetic_pairs = 8, 8, 100
  return c
