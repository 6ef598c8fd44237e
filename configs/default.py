"""Default configuration: every field a user may set, with a comment.

Every other config imports this and overrides a few fields. Override from the command line with
`--config.field=value`, e.g. `--config.train.num_epochs=3 --config.model.attention=basic`.
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # Seeds parameter init, data order and augmentation.

  config.data = ml_collections.ConfigDict()
  # fashion_mnist (offline, local IDX), cifar10 (TFDS) or synthetic.
  config.data.dataset = "fashion_mnist"
  config.data.data_dir = ""  # Fashion-MNIST IDX folder; "" = /usr/share/datasets/fashion-mnist.
  # TFDS data dir for cifar10 / cifar10_corrupted; "" = TFDS default.
  config.data.tfds_data_dir = ""
  config.data.synthetic_size = 32  # synthetic dataset only: image side.
  config.data.synthetic_channels = 3  # synthetic dataset only: channels.
  config.data.synthetic_examples = 512  # synthetic dataset only: training examples.
  config.data.synthetic_seed = 0  # synthetic dataset only: seed of the class templates.
  # Use only the first N training examples (0 = all); for smoke runs.
  config.data.train_examples = 0

  config.model = ml_collections.ConfigDict()
  config.model.name = "small_resnet"  # small_resnet, resnet18, vgg16, vgg16_bn.
  # APS channel attention after the first layer: none, basic, extended.
  config.model.attention = "none"
  config.model.attention_hidden = 512  # Hidden units of the attention MLP (paper: 512).
  config.model.input_mean = ()  # Per-channel mean subtracted inside the model; () = the dataset's.
  config.model.input_std = ()  # Per-channel std divided inside the model; () = the dataset's.
  config.model.dtype = "float32"  # Compute dtype: float32 or bfloat16 (GPU/TPU).
  # small_resnet: residual blocks per stage (the first may be 0: no block at full resolution, as the
  # quickstart).
  config.model.small_stage_sizes = (1, 1, 1)
  config.model.small_widths = (16, 32, 64)  # small_resnet: channels per stage (first = stem width).

  # Augmentation method: paper (augment + aps below) or a baseline (configs/baselines.py).
  config.method = "paper"
  # A baseline's hyperparameters (configs/baselines.py fills them).
  config.method_args = ml_collections.ConfigDict()

  config.augment = ml_collections.ConfigDict()
  config.augment.pad = 4  # Zero padding before suppression/NFD and random crop (CIFAR: 32 -> 40).
  config.augment.suppress_prob = 0.0  # Probability of power suppression per image (paper: 1/3).
  config.augment.suppress_masks = ("L", "M", "H")  # Masks drawn uniformly when suppressing.
  # keep ~ U(lo, hi); keep = 1 - the paper's alpha (METHOD §2).
  config.augment.keep_range = (0.0, 1.0)
  config.augment.nfd = False  # Noise in Frequency Domain on every image (after suppression).
  config.augment.nfd_sigma = 1.0  # NFD noise variance sigma (paper: 1).
  config.augment.crop = True  # Random crop back to the input size after padding.
  config.augment.flip = True  # Random horizontal flip.
  config.augment.clip = True  # Clip augmented images to [0, 1].

  config.aps = ml_collections.ConfigDict()
  config.aps.configuration = "LMH=000"  # Auxiliary labels: LMH=abc (a,b,c in {0,1}) or learnable.
  config.aps.aux_weight = 100.0  # lambda of eq. 10 (paper: 100); used only with attention.
  # "batch" (paper 4.1: "not all input samples have this additional loss term"): the batch mean of
  # per-sample losses CE_i + [suppressed_i] * L_aux_i; "labelled": sum of L_aux / number of
  # suppressed images.
  config.aps.aux_average = "batch"
  config.aps.theta_init = (0.0, 0.0, 0.0)  # Initial theta_b of the learnable configuration (eq. 9).

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 128  # Global batch size, split over all devices (paper: 128).
  config.train.num_epochs = 90  # Paper: 90.
  config.train.learning_rate = 0.1  # Initial LR (paper: 0.01 VGG, 0.1 ResNet).
  config.train.schedule = "step"  # step, cosine or warmup_cosine (experiment.SCHEDULES).
  # step schedule: epochs between decays (paper: 30), counted from epoch 0 whatever num_epochs is:
  # shorten it with num_epochs (a 30-epoch run with decay_epochs = 30 never decays).
  config.train.decay_epochs = 30
  config.train.decay_factor = 0.1  # step schedule: multiplier per decay (paper: 0.1).
  config.train.warmup_epochs = 0.0  # Linear warm-up epochs (0 = none).
  config.train.momentum = 0.9  # SGD momentum.
  config.train.nesterov = False  # Nesterov momentum.
  config.train.weight_decay = 5e-4  # L2 weight decay on the model parameters (not theta_b).
  config.train.log_every_steps = 50  # Progress line and metrics every N steps.
  config.train.eval_every_epochs = 10  # Clean test evaluation every N epochs (and at the end).
  config.train.checkpoint_every_steps = 1000  # Save a checkpoint every N steps (and at the end).
  config.train.keep_checkpoints = 3  # Checkpoints kept in workdir/checkpoints.
  config.train.max_steps = 0  # Stop after N steps (0 = num_epochs); for smoke tests.
  # Train steps per jitted call (lax.scan); 0 = auto: 1 on CPU, min(log_every_steps, 100) on
  # GPU/TPU; always reduced to divide every log/checkpoint/eval boundary.
  config.train.steps_per_call = 0
  # Keep the uint8 training set on every device and gather batches there (False: feed each batch
  # from the host).
  config.train.device_data = True
  config.train.label_smoothing = 0.0  # Label smoothing of the CE targets (0 = off).
  # EMA of the weights and of the BatchNorm statistics for every evaluation (clean, corruptions,
  # figure, `evaluate`, `analyze`), e.g. 0.999 (0 = off); checkpoints keep the live weights and
  # hold the EMAs in the optimizer state.
  config.train.ema_decay = 0.0
  # Evaluate on the mean logits of each image and its mirror image.
  config.train.test_time_flip = False
  # Auxiliary BatchNorms for the views a method routes to them (AFA's dual BN, as the original);
  # False = all views share the main BN.
  config.train.aux_bn = True
  # Write workdir/summary.png at the end: per-corruption accuracy + first-layer PDM histogram.
  config.train.summary_figure = False

  config.eval = ml_collections.ConfigDict()
  config.eval.batch_size = 512  # Evaluation batch (padded and masked: no example is dropped).

  config.corruptions = ml_collections.ConfigDict()
  config.corruptions.evaluate = False  # Evaluate on corrupted test sets at the end of training.
  config.corruptions.source = "auto"  # auto (tfds for cifar10, else generated), tfds or generated.
  config.corruptions.cache_dir = ""  # Generated sets cache; "" = ~/.cache/freqrobust/corrupted.
  config.corruptions.names = ()  # Corruptions to evaluate; () = the 15 benchmark corruptions.
  # Also the 4 extra ones (speckle, gaussian_blur, spatter, saturate).
  config.corruptions.include_extra = False
  config.corruptions.num_examples = 0  # Test examples per corrupted set (0 = the whole test set).
  config.corruptions.seed = 0  # Seed of generated corruptions.
  # Folder of frost photographs; "" = the photographs of an installed imagecorruptions package
  # (launch/setup.sh installs it), else the procedural texture; "procedural" forces the texture.
  config.corruptions.frost_dir = ""
  config.corruptions.baseline_workdir = ""  # Baseline run's workdir: mCE vs it, H&D Relative mCE.

  config.distributed = False  # Call jax.distributed.initialize() (multi-host GPU/TPU).
  return config
