"""Optimizers and learning-rate schedules built from a recipe's `train` section."""
from __future__ import annotations

import math

import keras
from keras import ops

NO_DECAY = ["bias", "gamma", "beta"]  # biases and normalization scales/offsets


@keras.saving.register_keras_serializable(package="zoo")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0, then constant, cosine (Loshchilov & Hutter 2017) or step decay."""

    def __init__(self, name, learning_rate, total_steps, warmup_steps=0, boundaries=(),
                 decay_rate=0.1, min_learning_rate=0.0):
        self.name = name
        self.learning_rate = float(learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.boundaries = [int(b) for b in boundaries]
        self.decay_rate = float(decay_rate)
        self.min_learning_rate = float(min_learning_rate)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        lr = self.learning_rate
        if self.name == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
            cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
            lr = self.min_learning_rate + (self.learning_rate - self.min_learning_rate) * cosine
        elif self.name == "step":
            passed = sum(ops.cast(step >= b, "float32") for b in self.boundaries) if self.boundaries else 0.0
            lr = self.learning_rate * ops.power(self.decay_rate, passed)
        if self.warmup_steps:
            lr = lr * ops.minimum(1.0, (step + 1.0) / self.warmup_steps)
        return ops.cast(lr, "float32") + ops.zeros_like(step)

    def get_config(self):
        return {"name": self.name, "learning_rate": self.learning_rate,
                "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "boundaries": self.boundaries, "decay_rate": self.decay_rate,
                "min_learning_rate": self.min_learning_rate}


def build_schedule(train, steps_per_epoch: int) -> WarmupSchedule:
    sched = train.schedule
    return WarmupSchedule(
        sched.name, train.optimizer.learning_rate, train.epochs * steps_per_epoch,
        warmup_steps=round(sched.warmup_epochs * steps_per_epoch),
        boundaries=[round(m * steps_per_epoch) for m in sched.milestones],
        decay_rate=sched.decay_rate, min_learning_rate=sched.min_learning_rate)


def build_optimizer(train, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """SGD (momentum, Nesterov), Adam or AdamW; weight decay skips biases and norm params."""
    opt = train.optimizer
    common = {"learning_rate": build_schedule(train, steps_per_epoch), "clipnorm": opt.clipnorm,
              "weight_decay": opt.weight_decay or None}
    if opt.name == "sgd":
        optimizer = keras.optimizers.SGD(momentum=opt.momentum, nesterov=opt.nesterov, **common)
    elif opt.name == "adam":
        optimizer = keras.optimizers.Adam(**common)
    else:
        optimizer = keras.optimizers.AdamW(**{**common, "weight_decay": opt.weight_decay})
    if opt.weight_decay:
        optimizer.exclude_from_weight_decay(var_names=NO_DECAY)
    return optimizer
