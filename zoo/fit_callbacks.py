"""The callbacks and the head-only phase of the pipeline's `model.fit`: an epoch's time and summary
line, TensorBoard once per epoch, the task's main metric every train.eval_every epochs, and
train.freeze_epochs (`HeadOnly`)."""
from __future__ import annotations

import contextlib
import sys
import time

import keras

from zoo.errors import RecipeError


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds` to the epoch's logs (so to history.csv), before other callbacks."""

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs["epoch_seconds"] = time.perf_counter() - self.start


class EpochSummary(keras.callbacks.ProgbarLogger):
    """One line per epoch: "epoch 3/30 - 0.3s - loss 0.1234 - ... - lr 0.003", the epoch's time
    once (history.csv's `epoch_seconds`, not a metric). verbose 1 in a terminal: Keras' progress
    bar while the epoch runs, then the line in its place (the bar's end-of-epoch metrics would
    repeat it); verbose 1 when stdout is not a terminal (a file, a pipe), and verbose 2: the line
    alone, with no ANSI escapes or carriage returns; verbose 0: nothing. `epochs`: the run's
    total, where one `fit` runs only some of them (train.freeze_epochs)."""

    def __init__(self, epochs: int | None = None):
        super().__init__()
        self.total = epochs

    def set_params(self, params):
        super().set_params(params)
        self.epochs = self.total or self.epochs
        self.bar = self.verbose == 1 and sys.stdout.isatty()

    def on_epoch_begin(self, epoch, logs=None):
        if self.bar:  # a fresh bar; no "Epoch i/n" line: the summary names the epoch
            self._reset_progbar()
            self._maybe_init_progbar()

    def on_train_batch_end(self, batch, logs=None):
        if self.bar:
            super().on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if not self.verbose:
            return
        logs = dict(logs or {})
        seconds = logs.pop("epoch_seconds", 0.0)
        parts = [f"{k} {v:.4f}" for k, v in logs.items() if k != "learning_rate"]
        lr = self.model.optimizer.learning_rate
        parts.append(f"lr {float(keras.ops.convert_to_numpy(lr)):.3g}")
        erase_bar = "\r\x1b[2K" if self.bar else ""
        print(f"{erase_bar}epoch {epoch + 1}/{self.epochs} - {seconds:.1f}s - " + " - ".join(parts), flush=True)


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback writing once per epoch (`update_freq="epoch"`), without its
    per-step work: its `on_train_batch_end` calls `summary.scalar` for every log entry on every
    step even then, with no writer set, so nothing is written (~1 ms a step on a CPU, ~0.4% of a
    resnet20 epoch). Profiling, a graph or steps/second (none of which the zoo asks for) keep it."""

    def on_train_batch_end(self, batch, logs=None):
        if (self.update_freq != "epoch" or self.write_steps_per_second
                or getattr(self, "_should_trace", True) or getattr(self, "_should_write_train_graph", True)):
            super().on_train_batch_end(batch, logs)


class MainMetric(keras.callbacks.Callback):
    """Every `every` epochs, the task's own evaluation (`task.evaluate`, as metrics.json measures
    the eval split) on the validation split (data.val_split), its numbers added to the epoch's
    logs as `val_<name>` (per-class values and `num_examples` left out) for the callbacks after
    it: history.csv, TensorBoard, the summary line, best.keras. Used where Keras' validation does not compute the task's main
    metric (detection's mAP)."""

    def __init__(self, task, dataset, info, every: int, guard):
        super().__init__()
        self.task, self.dataset, self.info, self.every, self.guard = task, dataset, info, every, guard

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.tripped or (epoch + 1) % self.every:
            return
        metrics = self.task.evaluate(self.model, self.dataset, self.info)
        for key, value in metrics.items():
            if key != "num_examples" and "/" not in key and isinstance(value, (int, float)):
                logs[f"val_{key}"] = float(value)


class HeadOnly:
    """train.freeze_epochs: `freeze` leaves only the model's head (the layers the registry
    declares) trainable; every other layer is non-trainable, so BatchNormalization runs in
    inference mode with its statistics frozen. `restore` puts back every layer's and variable's
    own setting (a `model.freeze_backbone` stays frozen). Keras needs a recompile after either."""

    def __init__(self, model, head):
        self.model = model
        self.layers = [(layer, layer.trainable) for layer in model._flatten_layers(include_self=False)]
        self.variables = [(v, v.trainable) for v in model.weights]
        found = {layer.name: layer for layer, _ in self.layers}
        self.head = [found[name] for name in head if name in found]
        if not self.head:
            raise RecipeError(f"train.freeze_epochs: model {model.name} has no head layer to train "
                              f"(the registry declares {list(head) or 'none'})")
        self.frozen = False

    def _freeze(self, layer):
        for sub in layer._flatten_layers(include_self=False, recursive=False):
            if any(sub is h for h in self.head):
                continue
            if any(h is inner for h in self.head for inner in sub._flatten_layers(include_self=False)):
                self._freeze(sub)  # a block holding the head: freeze the rest of it
            else:
                sub.trainable = False

    def freeze(self):
        self._freeze(self.model)
        self.frozen = True

    def restore(self):
        for layer, trainable in self.layers:  # outer layers first: an inner one's own flag wins
            layer.trainable = trainable
        for variable, trainable in self.variables:
            variable.trainable = trainable
        self.frozen = False

    @contextlib.contextmanager
    def unfrozen(self):
        """The layers' own settings while the block runs (saving a model mid-training: a
        `.keras` file must not record layers frozen for the first epochs only)."""
        frozen = self.frozen
        if frozen:
            self.restore()
        try:
            yield
        finally:
            if frozen:
                self.freeze()
