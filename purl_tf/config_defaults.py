"""Defaults every config in `configs/` starts from.

Each field is a plain value (no value is derived from another here, so an
override such as `--config.data.batch_size=64` never leaves a stale copy).
Strings that mean "unset" are '' and numbers that mean "unset" are 0, so that
every field can be overridden from the command line.
"""

import ml_collections

from purl_tf import data


def base_config() -> ml_collections.ConfigDict:
  """Returns the full default config (Fashion-MNIST, benchmark CNN).

  Every key carries its meaning in the comment beside or above it;
  `purl-config` prints them (purl_tf/config_doc.py), and a test keeps every
  key documented.
  """
  c = ml_collections.ConfigDict()
  c.seed = 0                  # seeds data splits, initialisation and search.
  # tf.config.experimental.enable_op_determinism(): a search resumed after a
  # kill finds the same policy as an uninterrupted one (on CPU). Some GPU
  # kernels have no deterministic version; set False there.
  c.deterministic = True

  # The network to prune.
  c.model = ml_collections.ConfigDict()
  # fmnist_cnn, fmnist_resnet, resnet50, mobilenet_v2, or 'file' (model.path).
  c.model.name = 'fmnist_cnn'
  # '' (random init), 'imagenet' (Keras applications' weights), or a path to
  # a weights file loaded after the net is built (any model).
  c.model.weights = ''
  c.model.path = ''           # a model file, with name='file'.
  c.model.alpha = 1.0         # MobileNet-V2 width.

  # Training, reward and test data.
  c.data = ml_collections.ConfigDict()
  # fashion_mnist (IDX files in data.dir), a tfds name (imagenet2012, ...),
  # image_folder (data.dir/train/LABEL/*.jpg) or synthetic_imagenet
  # (generated images, for smoke runs of the ImageNet code path).
  c.data.name = 'fashion_mnist'
  c.data.dir = data.FASHION_MNIST_DIR  # fashion_mnist / image_folder files.
  c.data.tfds_data_dir = ''   # tfds data_dir ('' : tfds's default).
  c.data.manual_dir = ''      # tfds manual_dir (ImageNet's downloaded tars).
  c.data.reward_size = 5000   # carved from the training data, never the test.
  # 0: all remaining training examples (synthetic_imagenet: 512 generated).
  c.data.train_size = 0
  c.data.test_size = 0        # 0: the whole test split (synthetic: 128).
  c.data.batch_size = 128     # see strategy.scale_batch_with_replicas.
  c.data.preprocess = 'grey'  # grey, resnet50 or mobilenet_v2 (the net's own).
  c.data.image_size = 28      # side of the images fed to the net.
  # tf.data autotuning. Off: on 2 CPU cores an iterator's end waited up to
  # 60 s, idle, for the autotuning thread; the batches are the same either
  # way, so only speed changes (on may feed GPUs faster).
  c.data.autotune = False
  c.data.num_classes = 10     # synthetic data only; real data says its own.

  # Where training runs (tf.distribute).
  c.strategy = ml_collections.ConfigDict()
  # auto (mirrored on GPUs, else default), default, mirrored, or multi_worker
  # (MultiWorkerMirroredStrategy; the cluster comes from TF_CONFIG).
  c.strategy.name = 'auto'
  # Split the CPU into N logical devices (N > 1) so that mirrored runs on a
  # machine without GPUs (tests); 0: leave the devices as they are.
  c.strategy.logical_cpus = 0
  # multi_worker: seconds a collective may wait for a lost worker before the
  # others fail with DeadlineExceeded (0: wait for ever).
  c.strategy.collective_timeout_s = 600
  # False: data.batch_size is the global batch, learning rates as written.
  # True: data.batch_size is per replica, the global batch is that times the
  # replicas, and every learning rate is multiplied by the replicas.
  c.strategy.scale_batch_with_replicas = False

  # Dense training, when the model has no trained weights (train.epochs > 0).
  c.train = ml_collections.ConfigDict()
  c.train.epochs = 3          # 0: use the weights as built or loaded.
  c.train.learning_rate = 1e-3  # of the dense training.
  c.train.optimizer = 'adam'  # adam or sgd (momentum 0.9).
  c.train.cache_dir = ''      # reuse dense weights trained with equal settings.
  # Training batches whose statistics replace BatchNormalization's trailing
  # moving averages after the dense training and after every final fine-tune
  # (purl_tf/batchnorm.py; 0: keep them).
  c.train.bn_batches = 50

  # The final fine-tune of a pruned network (every allocation gets the same).
  c.finetune = ml_collections.ConfigDict()
  c.finetune.epochs = 2       # epochs of the final fine-tune.
  c.finetune.learning_rate = 1e-3  # of the final fine-tune.
  c.finetune.optimizer = 'adam'    # adam or sgd (momentum 0.9).
  c.finetune.ramp_fraction = 0.5  # share of steps over which sparsity ramps up.
  c.finetune.frequency = 10       # re-mask every N steps while ramping.

  # What to reach.
  c.prune = ml_collections.ConfigDict()
  c.prune.sparsity = 0.9          # the global target sparsity.
  # What it counts: 'params' (the share of prunable weights removed) or
  # 'flops' (the share of their multiply-accumulates per example, where an
  # early high-resolution layer's weights cost more than a late one's).
  # Every allocation, the search's actions and the summary count it.
  c.prune.budget = 'params'

  # The episodes (see purl_tf/env.py and purl_tf/search_loop.py).
  c.search = ml_collections.ConfigDict()
  # Episodes, those that play the references included. 0: no episode; the
  # references are the candidates, each one a finalist (select.finalists at
  # least their number).
  c.search.episodes = 16
  c.search.greedy_every = 5       # a greedy (unrecorded) episode every N.
  c.search.finetune_steps = 10    # batches per reward fine-tune.
  c.search.subset_batches = 100   # cached training batches they draw from.
  c.search.eval_batches = 10      # reward-split batches per evaluation; 0: all.
  # Cached training batches that re-estimate BatchNormalization statistics
  # after each reward fine-tune, before its evaluation (0: off). Without it a
  # net with BatchNormalization is evaluated with the dense net's statistics.
  c.search.bn_batches = 10
  c.search.learning_rate = 1e-3   # of the reward fine-tunes.
  # The reference allocations (uniform, global_magnitude, lamp, erk,
  # sensitivity, or a blend of free ones such as lamp+erk, where a part
  # listed twice weighs twice; comma-separated). Each is played first as one
  # episode (all-neutral relative actions) and is always a candidate of the
  # selection stage, so the search is never worse than the best of them on
  # the reward split. 'sensitivity' is measured by the search itself (a
  # per-layer scan before the first episode, counted in its time).
  c.search.references = 'lamp,erk,global_magnitude'

  # The selection stage: which candidate is the result (purl_tf/selection.py).
  # The candidates are the references and the best agent episodes; a short
  # fine-tune of each can narrow them down, and the finalists each get the
  # final fine-tune itself. A candidate replaces the incumbent only when it
  # is better by more than 2 standard errors of the paired difference on the
  # reward examples (the benchmark's own win rule).
  c.select = ml_collections.ConfigDict()
  # How episodes rank: 'final_accuracy' (the last step's accuracy on the
  # whole reward split) or 'return' (the paper's rule). With
  # select.top_episodes = 0 the best episode so ranked is the result.
  c.select.episode_score = 'final_accuracy'
  # Agent episodes (distinct allocations, best by episode_score) that join
  # the references as candidates.
  c.select.top_episodes = 3
  # Batches of the short fine-tune that scores every candidate (a copy of the
  # final fine-tune from the dense weights: sparsity ramped over two thirds,
  # held for the last third, then the whole reward split); 0: none. Skipped
  # when every candidate is a finalist.
  c.select.short_steps = 150
  # Candidates (the best by the short fine-tune) that each get the final
  # fine-tune itself; the chosen one is exported as it is, so this costs N-1
  # final fine-tunes. 0: the short fine-tune chooses.
  c.select.finalists = 0
  # What the finalists are compared by on the reward split: 'accuracy', or
  # 'loss' (the mean cross-entropy, which also counts how sure a net is and
  # so separates nets whose accuracies 5,000 examples cannot).
  c.select.score = 'accuracy'
  # The incumbent a candidate must beat: 'best' (the best-scoring reference;
  # the references compete on score alone) or 'first' (the first reference,
  # which every other candidate must beat).
  c.select.incumbent = 'best'

  # The search's MDP: what an action means (see purl_tf/env.py).
  c.env = ml_collections.ConfigDict()
  # 'relative': an action scales the layer's kept weights in a reference
  # allocation by 2**u, u on env.scales, clamped so that every episode meets
  # the target exactly. 'absolute': the paper's grid of sparsities
  # (env.grid) with AMC's budget clamp; it cannot reach targets above the
  # grid's top.
  c.env.action_space = 'relative'
  # Relative actions: (smallest, largest, step) of the log2 scale u: -1..1
  # by 0.25 gives 9 actions, from half to twice the reference's kept weights.
  c.env.scales = (-1.0, 1.0, 0.25)
  # The reference allocation: 'best' (the best of search.references on the
  # reward split) or one of uniform, global_magnitude, lamp, erk.
  c.env.reference = 'best'
  # Absolute actions: (smallest, largest, step) of the sparsity grid.
  c.env.grid = (0.0, 0.95, 0.05)
  c.env.frequency = 1             # re-mask every N fine-tune steps; 0: only
                                  # when the layer's target is set (big nets).

  # The per-step reward (see purl_tf/reward.py).
  c.reward = ml_collections.ConfigDict()
  # 'accuracy_delta' (return = final accuracy drop; pairs with the relative
  # action space), 'target_penalty' (the paper-style default of the absolute
  # space) or 'accuracy_sparsity' (see purl_tf/reward.py).
  c.reward.name = 'accuracy_delta'
  # Weight of the sparsity term against the accuracy term's 1
  # (target_penalty; the lambda of accuracy_sparsity).
  c.reward.sparsity_weight = 1.0

  # The tf-agents learner (see purl_tf/agent.py).
  c.agent = ml_collections.ConfigDict()
  # Who picks the actions: the learners double_dqn or dqn, or a measuring
  # stick that learns nothing (purl_tf/strategies.py): random (uniform
  # actions) or local (one move from the best episode so far).
  c.agent.kind = 'double_dqn'
  c.agent.fc_layers = (128, 128)  # the Q-network's hidden layers.
  c.agent.learning_rate = 3e-3    # of the Q-network (Adam).
  # 1.0: with accuracy_delta the return telescopes to the final accuracy.
  c.agent.gamma = 1.0
  c.agent.n_step = 1              # n-step TD targets.
  c.agent.target_update_period = 20  # DQN updates between target-net copies.
  c.agent.batch_size = 32         # replay samples per DQN update.
  c.agent.train_iterations = 100  # DQN updates after each episode (cheap
                                  # beside one fine-tune; see agent_learning_test).
  c.agent.replay_capacity = 10000  # transitions the replay buffer keeps.
  # Random actions first; then epsilon decays linearly from 1 to epsilon_end.
  c.agent.warmup_episodes = 5
  c.agent.epsilon_end = 0.05      # the exploration rate it decays to.
  c.agent.epsilon_decay_episodes = 15  # episodes that decay takes.

  # The SavedModel for TF Serving (export/<model_name>/<version>/).
  c.export = ml_collections.ConfigDict()
  c.export.model_name = ''        # '' : the model's own name.
  c.export.version = 0            # 0 : the next free version.
  # TFLite files beside it (pruned.tflite, pruned_int8.tflite), zeros stored
  # sparse and checked against the Keras model on the test split: 'none',
  # 'float32', 'int8' (dynamic-range quantized) or 'float32,int8'.
  c.export.tflite = 'none'
  return c


# Episodes of the paper-faithful search where a config plays none.
PAPER_EPISODES = 14


def paper_faithful(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The setting closest to the paper: an absolute sparsity grid with AMC's
  budget clamp, the `target_penalty` reward, the best episode by return, no
  references, gamma 0.9, the last step evaluated like the others. The
  `:paper` variants of the Fashion-MNIST configs (`purl_paper` in the
  benchmark). A config that plays no episode gets `PAPER_EPISODES`.
  """
  if not int(config.search.episodes):
    config.search.episodes = PAPER_EPISODES
  config.env.action_space = 'absolute'
  config.reward.name = 'target_penalty'
  config.search.references = ''
  config.select.episode_score = 'return'
  config.select.top_episodes = 0
  config.select.finalists = 0
  config.agent.gamma = 0.9
  return config


def shrink_for_smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Cuts a config's search and fine-tunes down to a real but tiny run.

  The `:smoke` variants use this so that they exercise every stage (dense
  training, a search with warm-up, greedy and learning episodes, the
  selection stage, the final fine-tune and export) within minutes on 2 CPU
  cores.
  """
  config.train.epochs = min(int(config.train.epochs), 1) or 1
  config.finetune.epochs = 1
  config.search.episodes = 6
  config.search.greedy_every = 3
  config.search.references = 'lamp,erk'
  config.select.top_episodes = 1
  config.select.short_steps = 15
  config.search.finetune_steps = 5
  config.search.subset_batches = 20
  config.search.bn_batches = 2
  config.train.bn_batches = 5
  config.agent.warmup_episodes = 2
  config.agent.epsilon_decay_episodes = 3
  config.agent.train_iterations = 5
  config.agent.batch_size = 8
  return config


def imagenet_config(model: str, finetune_lr: float) -> ml_collections.ConfigDict:
  """The ImageNet budgets a GPU user starts from (see configs/*_imagenet.py).

  The net starts from ImageNet weights and is not retrained; each search
  step fine-tunes 100 batches of 256 and evaluates 40 batches (10,000 reward
  images carved from training); the final fine-tune runs 30 epochs of SGD.
  Learning rates are for the global batch of 256.
  """
  config = base_config()
  config.model.name = model
  config.model.weights = 'imagenet'
  config.data.name = 'imagenet2012'
  config.data.preprocess = model
  config.data.image_size = 224
  config.data.batch_size = 256
  config.data.reward_size = 10000
  config.data.num_classes = 1000
  config.train.epochs = 0
  config.finetune.epochs = 30
  config.finetune.optimizer = 'sgd'
  config.finetune.learning_rate = finetune_lr
  config.finetune.frequency = 100
  config.search.episodes = 60
  config.search.finetune_steps = 100
  config.search.subset_batches = 200
  config.search.eval_batches = 40
  config.search.learning_rate = 1e-4
  config.search.greedy_every = 10
  # Mask once when a layer's target is set: a top-k over every kernel at
  # every step would cost more than the step itself.
  config.env.frequency = 0
  config.agent.warmup_episodes = 5
  config.agent.epsilon_decay_episodes = 40
  return config


def imagenet_smoke(config: ml_collections.ConfigDict, episodes: int):
  """The ImageNet code path on generated 32x32 images, `episodes` long."""
  config.model.weights = ''
  config.data.name = 'synthetic_imagenet'
  config.data.image_size = 32
  config.data.batch_size = 16
  config.data.reward_size = 32
  config.data.train_size = 64
  config.data.test_size = 32
  config.data.num_classes = 4
  shrink_for_smoke(config)
  config.search.episodes = episodes
  config.search.greedy_every = 2 if episodes >= 2 else 0
  config.search.finetune_steps = 1
  config.search.subset_batches = 2
  config.search.eval_batches = 1
  config.search.bn_batches = 1
  config.train.bn_batches = 1
  config.agent.warmup_episodes = 1
  config.finetune.learning_rate = 1e-3
  # One reference and no selection stage: each step of these nets costs
  # seconds on a CPU, and the Fashion-MNIST smoke runs cover both.
  config.search.references = 'lamp'
  config.select.top_episodes = 0
  config.select.finalists = 0
  return config


def load(spec: str) -> ml_collections.ConfigDict:
  """Loads `path/to/config.py[:variant]` as `--config=` does.

  Raises:
    ValueError: the file does not exist or has no `get_config`.
  """
  import importlib.util  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  path, _, variant = spec.partition(':')
  if not os.path.exists(path):
    raise ValueError(f'config file {path} does not exist')
  module_spec = importlib.util.spec_from_file_location('purl_config', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, 'get_config'):
    raise ValueError(f'{path} has no get_config()')
  return module.get_config(variant or None)
