"""The recipe's sections as dataclasses: what every task shares. A task adds its own data keys
by subclassing `DataConfig` (`Task.data_config`); `zoo.recipe` loads and validates YAML into these."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Union


@dataclass
class AugmentConfig:
    flip: bool = False  # random horizontal flip
    crop_padding: int = 0  # pad by this many pixels, then random-crop back (CIFAR style)
    random_resized_crop: bool = False  # Inception-style crop of a random area/aspect, resized
    crop_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])  # area range of that crop
    scale_jitter: Optional[list[float]] = None  # [min, max] resize factor, then crop/pad back


@dataclass
class DataConfig:
    source: str = "tfds"  # one of the task's sources (Task.all_sources)
    name: Optional[str] = None  # tfds dataset / synthetic generator name
    path: Optional[str] = None  # root directory for folder / coco
    data_dir: Optional[str] = None  # tfds data_dir
    train_split: str = "train"
    # What chooses the model (best.keras, early stopping, eval_every): null = a seeded 10% of
    # train_split held out (stratified per class where labels are listed), a fraction in (0, 1)
    # = that part, or a split name (`train[45000:]`, a `val` folder). zoo.data.holdout.
    val_split: Optional[Union[float, str]] = None
    eval_split: str = "test"  # what metrics.json reports; never used to choose
    image_size: list[int] = field(default_factory=lambda: [224, 224])
    batch_size: int = 32  # global batch size, split across replicas
    num_classes: Optional[int] = None  # inferred from the data when left out
    cache: Union[bool, Literal["auto"]] = "auto"  # auto: cache in memory when it fits
    shuffle_buffer: int = 10000
    skip_corrupt: bool = False  # folder sources: skip undecodable images with a warning count
    # Image files of more pixels (width x height, from the header) are refused undecoded: Pillow's
    # decompression-bomb limit, 256 MiB as RGB (a 50 MP photo passes, a 100 MP one needs more), so
    # a 683 KB PNG of 15000x15000 px is one line instead of 3.9 GB.
    max_pixels: int = 89_478_485
    train_size: Optional[int] = None  # synthetic: number of examples (default 2000 / 500)
    eval_size: Optional[int] = None  # synthetic: of every split but the training one
    eval_crop: float = 1.0  # center-crop this fraction of the shorter side at evaluation
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class OptimizerConfig:
    name: Literal["sgd", "adam", "adamw"] = "sgd"
    learning_rate: float = 0.1
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    weight_decay: float = 0.0  # not applied to biases and normalization parameters
    clipnorm: Optional[float] = None


@dataclass
class ScheduleConfig:
    name: Literal["constant", "cosine", "step"] = "constant"
    warmup_epochs: float = 0.0  # linear warmup from 0
    milestones: list[float] = field(default_factory=list)  # step: epochs at which lr *= decay_rate
    decay_rate: float = 0.1
    min_learning_rate: float = 0.0  # cosine: final learning rate


@dataclass
class EarlyStoppingConfig:
    patience: int = 5  # epochs without improvement of the task's main metric before stopping


@dataclass
class TrainConfig:
    epochs: int = 10
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: dict = field(default_factory=dict)  # keyword arguments of the task's loss
    steps_per_epoch: Optional[int] = None  # default: one pass over the training split
    validate: bool = True  # evaluate on data.val_split after epochs (history.csv val_*); false: nothing held out
    verbose: Literal[0, 1, 2] = 1  # 1: Keras progress bar per epoch; 2: one line per epoch; 0: silent
    freeze_epochs: int = 0  # train only the head (normalization statistics frozen) for the first N epochs
    eval_every: int = 1  # the task's main metric (accuracy, mIoU, mAP) on data.val_split every N epochs
    early_stopping: Optional[EarlyStoppingConfig] = None  # stop when the main metric stops improving


@dataclass
class RuntimeConfig:
    mixed_precision: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"] = "auto"
    distribution: Literal["auto", "none", "mirrored", "multi_worker", "tpu"] = "auto"
    seed: int = 0
    steps_per_execution: int = 1


@dataclass
class ModelConfig:
    name: str
    params: dict = field(default_factory=dict)  # the builder's keyword arguments
    pretrained: Union[bool, str, None] = None  # TAG | imagenet | PATH | URL: start from these weights
