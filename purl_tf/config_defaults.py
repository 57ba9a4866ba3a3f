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
  c.model.weights = ''        # '' (random init) or 'imagenet' for applications.
  c.model.weights_path = ''   # a weights file to load after building.
  c.model.path = ''           # a model file, with name='file'.
  c.model.alpha = 1.0         # MobileNet-V2 width.

  # Training, reward and test data.
  c.data = ml_collections.ConfigDict()
  # fashion_mnist (IDX files in data.dir), a tfds name (imagenet2012, ...),
  # image_folder (data.dir/train/LABEL/*.jpg) or synthetic_imagenet.
  c.data.name = 'fashion_mnist'
  c.data.dir = data.FASHION_MNIST_DIR  # fashion_mnist / image_folder files.
  c.data.tfds_data_dir = ''   # tfds data_dir ('' : tfds's default).
  c.data.manual_dir = ''      # tfds manual_dir (ImageNet's downloaded tars).
  c.data.reward_size = 5000   # carved from the training data, never the test.
  c.data.train_size = 0       # 0: all remaining training examples.
  c.data.test_size = 0        # 0: the whole test split.
  c.data.batch_size = 128     # see strategy.scale_batch_with_replicas.
  c.data.preprocess = 'grey'  # grey, resnet50 or mobilenet_v2 (the net's own).
  c.data.image_size = 28      # side of the images fed to the net.
  # tf.data autotuning. Off: an iterator's end waited up to 60 s, idle, for
  # the autotuning thread (purl_tf/data.py); the batches are the same
  # either way, so only speed changes.
  c.data.autotune = False
  c.data.num_classes = 10     # synthetic data only; real data says its own.
  # name='synthetic_imagenet': generated training images, for smoke runs of
  # the ImageNet code path.
  c.data.synthetic_train = 512
  c.data.synthetic_test = 128   # name='synthetic_imagenet': test images.
  c.data.synthetic_side = 80    # name='synthetic_imagenet': image side.

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
  # moving averages after dense training (purl_tf/batchnorm.py; 0: keep them).
  c.train.bn_batches = 50

  # The final fine-tune of a pruned network (every allocation gets the same).
  c.finetune = ml_collections.ConfigDict()
  c.finetune.epochs = 2       # epochs of the final fine-tune.
  c.finetune.learning_rate = 1e-3  # of the final fine-tune.
  c.finetune.optimizer = 'adam'    # adam or sgd (momentum 0.9).
  c.finetune.ramp_fraction = 0.5  # share of steps over which sparsity ramps up.
  c.finetune.frequency = 10       # re-mask every N steps while ramping.
  c.finetune.bn_batches = 50      # BatchNormalization re-estimate (as train).

  # What to reach.
  c.prune = ml_collections.ConfigDict()
  c.prune.sparsity = 0.9          # the global target sparsity.

  # The PuRL search (see purl_tf/env.py and purl_tf/search_loop.py). Budgets
  # sized for search + final fine-tune near 3x the dense training on 2 cores
  # (benchmarks/results/fmnist.md); configs/ adjust them per net.
  c.search = ml_collections.ConfigDict()
  # Episodes, the demonstrations (search.references) included. 0: no
  # episode; the references are the candidates and every one is a finalist
  # (search.finalists at least their number): the final fine-tune alone
  # chooses among them (fmnist_resnet's default; `purl` in the README).
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
  c.search.nan_penalty = -2.0     # reward of a diverged step (ends the episode).
  c.search.sparsity_tolerance = 0.005  # an episode meets the budget within this.
  c.search.checkpoint_every = 1   # episodes between checkpoints.
  # Allocations (uniform, global_magnitude, lamp, erk, sensitivity, or a
  # blend of free ones such as lamp+erk; comma-separated) played first, one
  # episode each, as demonstrations: they go into the replay buffer like any
  # episode, the search starts at least as good as the best of them on the
  # reward split, and with env.reference='best' the best becomes the
  # reference the relative actions scale. The best free allocation changes
  # with net and target (benchmarks/results/fmnist.md). 'sensitivity' is
  # measured by the search itself (a scan of every layer at
  # search.sensitivity_grid before the first episode, counted in the
  # search's time); it is not a default demonstration: on fmnist_cnn the
  # search returned LAMP with or without it (and once the sensitivity
  # demonstration, 0.1 pt below LAMP), and on fmnist_resnet it was returned
  # in 2 of 15 cells (+0.15 and -1.20 pt against LAMP), while the scan cost
  # about three episodes (`purl_sens` in the report).
  c.search.references = 'lamp,erk,global_magnitude'
  # The sparsities the sensitivity scan prunes each layer to alone (a value
  # halfway from the target to 1 is added when the grid tops out below it).
  c.search.sensitivity_grid = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8,
                               0.85, 0.9, 0.95, 0.98, 0.99)
  # Which episode is best, among those that meet the budget:
  # 'final_accuracy' (the network the user gets: the last step's reward-split
  # accuracy, measured on search.final_eval_batches) or 'return' (the paper's
  # rule; with target_penalty it credits pruning early layers hard).
  c.search.select = 'final_accuracy'
  # Reward-split batches for the last step's evaluation (0: the whole split;
  # -1: as search.eval_batches). A few batches let a lucky episode win.
  c.search.final_eval_batches = 0
  # Extra fine-tune batches after the last layer, before that evaluation (the
  # last layers otherwise get only finetune_steps to recover).
  c.search.final_finetune_steps = 0
  # Re-ranking (0: off): after the last episode, the demonstrations and the
  # N best other episodes are each scored by a short copy of the final
  # fine-tune (sparsity ramped from the dense weights over ramp_steps
  # batches, held for hold_steps, then the whole reward split); the best of
  # them is the result. See PruningEnv.ramp_accuracy: on fmnist_resnet at
  # 98% the episode's own last accuracy was at chance (0.10) both for the
  # uniform allocation (test 0.63) and for one that tested 0.80; the short
  # ramp scored them 0.37 and 0.70 (benchmarks/results/proxy_*.md).
  c.search.rerank = 3
  c.search.rerank_ramp_steps = 100  # re-ranking: batches of sparsity ramp.
  c.search.rerank_hold_steps = 50   # re-ranking: batches at full sparsity.
  # Re-ranking: an agent episode replaces the best demonstration (a free
  # allocation) only when its accuracy is higher by more than this many
  # standard errors of the paired difference on the reward examples (the
  # benchmark's win rule); 0: the best score wins.
  c.search.rerank_z = 2.0
  # Re-ranking: which demonstration holds until beaten by rerank_z. 'best':
  # the best-scoring one (the demonstrations compete on score alone);
  # 'first': the first of search.references, which the other
  # demonstrations must beat by rerank_z too (benchmarks/rerank_study.py).
  c.search.rerank_incumbent = 'best'
  # Re-ranking: the order of its fine-tune batches. 'candidate': each
  # candidate's own (seeded by its episode); 'common': one order shared by
  # every candidate, so their difference is not also a difference of batch
  # orders (see rerank.correct_per_example).
  c.search.rerank_order = 'candidate'
  # Re-ranking: short fine-tunes per candidate, each in another batch order;
  # the score is their mean (each costs rerank_ramp_steps + hold_steps).
  c.search.rerank_draws = 1
  # Finalists (0: off): the N best candidates of the re-ranking (all of them
  # when there are no more; the short re-ranking is then skipped) each get
  # the final fine-tune itself and are scored on the whole reward split; the
  # chosen one is the result, its fine-tuned net exported as it is, so this
  # costs N-1 final fine-tunes more (purl_tf/finalists.py). The choice is
  # rerank.choose's, with search.rerank_incumbent and finalist_z.
  c.search.finalists = 0
  # Finalists: paired standard errors by which a finalist must beat the
  # incumbent (search.rerank_incumbent: 'best', only agent episodes must beat
  # the best demonstration; 'first', every finalist must beat the first
  # demonstration) to be chosen (0: the best score wins).
  c.search.finalist_z = 2.0
  # Finalists: what they are compared by on the reward split. 'accuracy';
  # 'loss': the mean cross-entropy, a proper scoring rule that also counts
  # how sure a net is, so that a paired difference of a few tenths of a point
  # of accuracy that 5,000 examples cannot resolve may still be resolved
  # (benchmarks/results/finalist_fmnist_resnet.md).
  c.search.finalist_score = 'accuracy'
  # Rescale the best episode to meet the target exactly (the grid and clamp
  # overshoot it), so methods are compared at one sparsity.
  c.search.fit_to_target = True
  # A result that is a demonstration is that allocation exactly, not the
  # episode's sparsities (which the clamp and fit_to_target move by ~1e-6,
  # enough to change a 98% fine-tune by 1 pt); see SearchLoop.allocation_of.
  # False: the episode's (what the `purl_nosens` and `purl_14ep` cells of
  # benchmarks/results/fmnist.md ran).
  c.search.exact_demonstrations = True

  # The search's MDP: what an action means (see purl_tf/env.py).
  c.env = ml_collections.ConfigDict()
  # 'relative' (see purl_tf/env.py): an action scales the layer's kept
  # weights in a reference allocation by 2**u, u on the scale grid below,
  # clamped in kept-weights space so every episode meets the target exactly.
  # 'absolute': the paper's grid of sparsities action_min..action_max with
  # AMC's budget clamp; it cannot reach targets above action_max.
  c.env.action_space = 'relative'
  # Relative actions: the smallest log2 scale (-1: half the reference's
  # kept weights).
  c.env.scale_min = -1.0
  c.env.scale_max = 1.0           # relative: the largest (1: twice).
  c.env.scale_step = 0.25         # relative: grid step (-1..1 by 0.25: 9).
  # The reference allocation: 'best' (the best of search.references on the
  # reward split) or one of uniform, global_magnitude, lamp, erk.
  c.env.reference = 'best'
  c.env.action_min = 0.0          # absolute: the smallest layer sparsity.
  c.env.action_max = 0.95         # absolute: the largest.
  c.env.action_step = 0.05        # absolute: grid step.
  # Absolute: AMC's clamp, so that the layers still to come can meet the
  # budget (without it an episode may fall short of the target).
  c.env.budget_clamp = True
  c.env.frequency = 1             # re-mask every N fine-tune steps; 0: only
                                  # when the layer's target is set (big nets).

  # The per-step reward (see purl_tf/reward.py).
  c.reward = ml_collections.ConfigDict()
  # 'accuracy_delta' (return = final accuracy drop; pairs with the relative
  # action space), 'target_penalty' (the paper-style default of the absolute
  # space) or 'accuracy_sparsity' (see purl_tf/reward.py).
  c.reward.name = 'accuracy_delta'
  c.reward.accuracy_weight = 1.0  # target_penalty: weight of the accuracy term.
  c.reward.sparsity_weight = 1.0  # target_penalty: weight of the sparsity term.
  # target_penalty: accuracy below the dense one that still counts as on
  # target.
  c.reward.allowed_drop = 0.01
  c.reward.sparsity_lambda = 1.0  # for name='accuracy_sparsity'.

  # The tf-agents learner (see purl_tf/agent.py).
  c.agent = ml_collections.ConfigDict()
  c.agent.kind = 'double_dqn'     # double_dqn or dqn.
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
  c.agent.warmup_episodes = 5     # random actions first.
  c.agent.epsilon_start = 1.0     # exploration rate after the warm-up.
  c.agent.epsilon_end = 0.05      # the rate it decays to, linearly.
  c.agent.epsilon_decay_episodes = 15  # episodes that decay takes.

  # The SavedModel for TF Serving (export/<model_name>/<version>/).
  c.export = ml_collections.ConfigDict()
  c.export.model_name = ''        # '' : the model's own name.
  c.export.version = 0            # 0 : the next free version.
  return c


# Episodes of the paper-faithful search where a config plays none: as many
# as `purl_paper` played on fmnist_resnet (benchmarks/results/fmnist.md).
PAPER_EPISODES = 14


def paper_faithful(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The setting closest to the paper (and to purl_tf before the relative
  action space): an absolute sparsity grid with AMC's budget clamp, the
  `target_penalty` reward, the best episode by return, no demonstrations,
  gamma 0.9, the last step evaluated like the others. Kept as an ablation
  (`:paper` variants of the Fashion-MNIST configs; `purl_paper` rows in the
  benchmark). A config that plays no episode (`search.episodes=0`, it only
  chooses among its references) gets `PAPER_EPISODES`.
  """
  if not int(config.search.episodes):
    config.search.episodes = PAPER_EPISODES
  config.env.action_space = 'absolute'
  config.reward.name = 'target_penalty'
  config.search.select = 'return'
  config.search.references = ''
  config.search.final_eval_batches = -1
  config.search.final_finetune_steps = 0
  config.search.rerank = 0
  config.search.finalists = 0
  config.agent.gamma = 0.9
  return config


def shrink_for_smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Cuts a config's search and fine-tunes down to a real but tiny run.

  The `:smoke` variants use this so that they exercise every stage (dense
  training, a search with warm-up, greedy and learning episodes, the final
  fine-tune and export) within minutes on 2 CPU cores.
  """
  config.train.epochs = min(int(config.train.epochs), 1) or 1
  config.finetune.epochs = 1
  config.search.episodes = 6
  config.search.greedy_every = 3
  config.search.references = 'lamp,erk'
  config.search.rerank = 1
  config.search.rerank_ramp_steps = 10
  config.search.rerank_hold_steps = 5
  config.search.finetune_steps = 5
  config.search.subset_batches = 20
  config.search.bn_batches = 2
  config.train.bn_batches = 5
  config.finetune.bn_batches = 5
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
  config.data.num_classes = 4
  config.data.synthetic_train = 96
  config.data.synthetic_test = 32
  config.data.synthetic_side = 40
  shrink_for_smoke(config)
  config.search.episodes = episodes
  config.search.greedy_every = 2 if episodes >= 2 else 0
  config.search.finetune_steps = 1
  config.search.subset_batches = 2
  config.search.eval_batches = 1
  config.search.bn_batches = 1
  config.train.bn_batches = 1
  config.finetune.bn_batches = 1
  config.agent.warmup_episodes = 1
  config.finetune.learning_rate = 1e-3
  # One demonstration and no re-ranking: each step of these nets costs
  # seconds on a CPU, and the Fashion-MNIST smoke runs cover both.
  config.search.references = 'lamp'
  config.search.rerank = 0
  config.search.finalists = 0
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
