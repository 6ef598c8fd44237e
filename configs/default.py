"""Default configuration: every field a user may set, with a comment.

Every other config imports this and overrides a few fields. Override from the command line with
`--config.field=value`, e.g. `--config.train.num_epochs=3 --config.model.attention=basic`.
"""
import ml_collections

from freqrobust import evaluators


def _evaluation(type_: str, at_end: bool = False, every_epochs: float = 0.0):
  """A `config.evals` entry of `type_` with its evaluator's own settings at their defaults
  (`freqrobust/evaluators/<type>.py: defaults`, written once there)."""
  settings = dict(evaluators.EVALUATORS[type_].defaults)
  return ml_collections.ConfigDict(dict(type=type_, at_end=at_end, every_epochs=every_epochs,
                                        **settings))


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
  # Randomly permute the training labels (fixed by config.seed; test labels untouched): HFC's
  # shuffled-label runs. Tools measuring training accuracy read the same permuted labels.
  config.data.shuffle_labels = False

  config.model = ml_collections.ConfigDict()
  # small_resnet, resnet18, vgg16, vgg16_bn; wrn, preact_resnet18 (imported models, docs/MODELS.md).
  config.model.name = "small_resnet"
  # APS channel attention after the first layer: none, basic, extended.
  config.model.attention = "none"
  # small_resnet, resnet18: False builds them without BatchNorm (each BN a learned per-channel
  # bias; HFC's "without BN" models). The other backbones refuse False.
  config.model.batch_norm = True
  config.model.attention_hidden = 512  # Hidden units of the attention MLP (paper: 512).
  config.model.input_mean = ()  # Per-channel mean subtracted inside the model; () = the dataset's.
  config.model.input_std = ()  # Per-channel std divided inside the model; () = the dataset's.
  config.model.dtype = "float32"  # Compute dtype: float32 or bfloat16 (GPU/TPU).
  # small_resnet: residual blocks per stage (the first may be 0: no block at full resolution, as the
  # quickstart).
  config.model.small_stage_sizes = (1, 1, 1)
  config.model.small_widths = (16, 32, 64)  # small_resnet: channels per stage (first = stem width).
  # Stride-2 3x3 convolutions' padding: same (Flax SAME, (0,1); DeepMind's models) or pytorch
  # (padding=1, (1,1); PyTorch models). resnet18, small_resnet, wrn, preact_resnet18.
  config.model.padding = "same"
  config.model.activation = "relu"  # relu or swish (wrn, preact_resnet18; the others: relu only).
  config.model.wrn_depth = 28  # wrn: depth 6n + 4 (28, 34, 70, ...).
  config.model.wrn_width = 10  # wrn: widen factor k (channels 16k, 32k, 64k).
  # preact_resnet18: the projection shortcut reads the activated input (activated, 1x1), the raw
  # input (input, 1x1) or the raw input with a 3x3 conv (input_3x3; DeepMind's).
  config.model.preact_shortcut = "activated"
  config.model.preact_final_bn = True  # preact_resnet18: BN + activation before the pooling.

  # Augmentation method (freqrobust/augment/registry.py): paper (augment + aps below) or a
  # baseline (configs/baselines.py).
  config.method = "paper"
  # A baseline's hyperparameters (configs/baselines.py fills them).
  config.method_args = ml_collections.ConfigDict()
  # The method under adversarial training (the views it trains with CE attacked; any method but
  # pgd_at / fgsm_rs themselves): "" (none), pgd_at or fgsm_rs; adversarial_args: that method's
  # fields ({} = its defaults).
  config.adversarial = ""
  config.adversarial_args = ml_collections.ConfigDict()

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
  config.train.checkpoint_every_steps = 1000  # Save a checkpoint every N steps (and at the end).
  config.train.keep_checkpoints = 3  # Checkpoints kept in workdir/checkpoints.
  # Also keep one checkpoint every N epochs, beside the newest ones (0 = none): curves over
  # training afterwards (`evaluate --step=N`, `analyze TOOL --step=N`).
  config.train.keep_every_epochs = 0.0
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
  config.train.conv_backend = "auto"  # auto, xla or onednn: the convolutions (native/conv.py).

  config.eval = ml_collections.ConfigDict()
  config.eval.batch_size = 512  # Evaluation batch (padded and masked: no example is dropped).

  config.corruptions = ml_collections.ConfigDict()
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

  # The evaluations of a run (freqrobust/evaluators: one module per type). Each entry: type,
  # at_end (evaluate the final model; results.json says "finished" once all are done),
  # every_epochs (also during training, logged to metrics.jsonl as eval lines; 0 = never), and the
  # type's own settings, with the defaults of the evaluator's `defaults` (documented in its
  # module). `python -m freqrobust.evaluate --workdir=DIR --evals=a,b` runs any later.
  config.evals = ml_collections.ConfigDict()
  # Clean accuracy and CE on every test example.
  config.evals.clean = _evaluation("clean", at_end=True, every_epochs=10.0)
  # The corruption report on the sets of config.corruptions (baseline_workdir "" = that section's).
  config.evals.corruptions = _evaluation("corruptions")
  # Accuracy on HFC's low/high-pass test images (radial split; radii at 32 px, scaled to the image
  # size; rescale "max" divides each filtered image by its maximum, as HFC's scripts). Named
  # `bandpass` before 2026-12 (old config.json files load); `analyze bandpass` is Yin's filters.
  config.evals.hfc_split = _evaluation("hfc_split")
  # Accuracy under PGD (every eps) and APGD with each of apgd_losses (main_eps), their worst case
  # per example, and the gradient-masking checks (large_eps: PGD's unbounded check, 0 = L-inf 1
  # or L2 sqrt(H*W*C)); eps () and main_eps 0 = the dataset's threat model (Fashion-MNIST L-inf
  # 0.1, CIFAR-10 8/255).
  # version "standard": AutoAttack's standard ensemble at main_eps (APGD-CE, APGD-T, FAB-T with
  # autoattack_steps and target_classes, Square with square_queries; RobustBench's number),
  # APGD-CE + APGD-T at the other radii, then Square at those above main_eps (square_beyond);
  # "fast": PGD and APGD as above. surrogate "frozen_gate" (standard, attention models): APGD-CE
  # + APGD-T through the gate held constant (BPDA) after every other attack at main_eps and
  # above, checked by surrogate_weaker. transfer_from: another
  # run's workdir whose worst-case white-box images (made on its model) are scored here, flagged
  # if they beat this model's own attacks.
  config.evals.adversarial = _evaluation("adversarial")
  # Accuracy under Kaufmann et al.'s adversarial corruptions at CIFAR-10's budgets and the UA
  # mean at medium (steps 0 = the reference's per attack).
  config.evals.adversarial_corruptions = _evaluation("adversarial_corruptions")
  # Accuracy under band-limited APGD (apgd_losses, worst case) at main_eps (0 = the dataset's)
  # per band: num_bands equal slices of the DCT diagonals and of the FFT radius; beside the full
  # band, with the bands that beat it flagged (docs/METHOD.md §12); its figure shows the
  # adversarial worst case and the UA mean when they ran in the same call.
  config.evals.adversarial_bands = _evaluation("adversarial_bands")
  # Per test image, the Fourier basis and sign of L2 norm eps (the whole perturbation) that hurts
  # it most, found exhaustively: the accuracy under it, under the worst fixed basis, and in which
  # third of the FFT radius the worst bases lie; a map of how often each (i, j) is the worst.
  config.evals.adversarial_fourier = _evaluation("adversarial_fourier")
  # workdir/summary.png: per-corruption accuracy + first-layer PDM histogram (after the above).
  config.evals.summary = _evaluation("summary")

  config.distributed = False  # Call jax.distributed.initialize() (multi-host GPU/TPU).
  config.coordinator_address = ""  # host:port of process 0; "" = found by jax (Slurm, TPU).
  config.num_processes = 0  # With coordinator_address: the number of processes.
  config.process_id = -1  # With coordinator_address: this process's index (0 = the writer).
  return config
