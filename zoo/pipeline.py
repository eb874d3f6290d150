"""train() and evaluate(): the one path every task goes through.

recipe -> runtime (policy, strategy) -> source -> task.prepare -> batched tf.data ->
model (built under the strategy's scope) -> compile with the task's loss and metrics ->
fit -> task.evaluate -> run directory.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from zoo import run_dir, runtime
from zoo.data import DatasetInfo, load_split, preview
from zoo.errors import DataError, RecipeError, ZooError
from zoo.models import create_model, load_model_file
from zoo.optim import build_optimizer
from zoo.plots import save_curves
from zoo.recipe import Recipe, load_recipe
from zoo.tasks import get_task

CACHE_BUDGET_BYTES = 1 << 30  # cache decoded examples in memory below this estimate


@dataclass
class Run:
    output_dir: Path
    model: keras.Model
    metrics: dict
    history: dict


def _as_recipe(recipe) -> Recipe:
    return recipe if isinstance(recipe, Recipe) else load_recipe(recipe)


def resolve_output_dir(recipe: Recipe, output_dir, resume: bool) -> Path:
    if output_dir is None:
        runs = Path("runs") / recipe.name
        if resume:
            previous = sorted(p for p in runs.glob("*") if (p / "checkpoints").is_dir())
            if not previous:
                raise ZooError(f"--resume: no earlier run of {recipe.name} with checkpoints under {runs}")
            return previous[-1]
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path, n = runs / stamp, 1
        while path.exists():
            path, n = runs / f"{stamp}-{n}", n + 1
        return path
    return Path(output_dir)


@contextlib.contextmanager
def data_errors(*splits):
    """Turn a decode failure deep inside tf.data into one line naming the bad file."""
    try:
        yield
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, tf.errors.DataLossError) as err:
        for split in splits:
            if split.diagnose is not None:
                split.diagnose(err)
        raise


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds` to the epoch's logs (so to history.csv), before other callbacks."""

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs["epoch_seconds"] = time.perf_counter() - self.start


class EpochSummary(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, then one summary line per epoch: losses, metrics, lr, time."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if not self.verbose:
            return
        logs = dict(logs or {})
        seconds = logs.pop("epoch_seconds", 0.0)
        parts = [f"{k} {v:.4f}" for k, v in logs.items() if k != "learning_rate"]
        lr = self.model.optimizer.learning_rate
        parts.append(f"lr {float(keras.ops.convert_to_numpy(lr)):.3g}")
        print(f"epoch {epoch + 1}/{self.epochs} - {seconds:.1f}s - " + " - ".join(parts), flush=True)


def _steps_per_epoch(recipe, dataset, info) -> int:
    if recipe.train.steps_per_epoch:
        return recipe.train.steps_per_epoch
    steps = int(dataset.cardinality())
    if steps == 0:
        raise DataError(f"the training split has {info.num_examples} examples, fewer than one batch "
                        f"(data.batch_size={recipe.data.batch_size})")
    if steps < 0:
        raise DataError("the training split is of unknown size; set train.steps_per_epoch")
    return steps


def _should_cache(recipe, task, split) -> bool:
    setting = recipe.data.cache
    if setting != "auto":
        return setting
    n = split.info.num_examples
    return n is not None and n * task.example_bytes(recipe) < CACHE_BUDGET_BYTES


def _with_num_classes(recipe, info):
    if recipe.data.num_classes is not None:
        info.num_classes = recipe.data.num_classes
    return info


def _check_classes(task, info):
    if info.num_classes < task.min_classes:
        raise DataError(f"the training split has {info.num_classes} class(es) "
                        f"({preview(info.class_names) or 'none'}): {task.name} needs at "
                        f"least {task.min_classes}")


def build_model(recipe, task, info):
    """The recipe's model for `info`'s classes; a builder's refusal (ValueError: an input size
    the architecture cannot take, an impossible argument) is a bad recipe, named in one line."""
    try:
        return create_model(recipe.model.name, pretrained=recipe.model.pretrained or False,
                            **task.model_args(recipe, info), **recipe.model.params)
    except ValueError as err:
        raise RecipeError(f"model: {recipe.model.name} cannot be built from this recipe "
                          f"(data.image_size {recipe.data.image_size}): {str(err).splitlines()[0]}") from None


def train(recipe, output_dir=None, resume: bool = False) -> Run:
    """Train a recipe; write recipe.yaml, history.csv, model.keras, metrics.json, logs/."""
    recipe = _as_recipe(recipe)
    out = resolve_output_dir(recipe, output_dir, resume)
    with run_dir.locked(out):  # first: a trainer already in `out` is named, with --resume or without
        if not resume and ((out / "checkpoints").exists() or (out / "model.keras").exists()):
            raise ZooError(f"{out} already holds a run; pass --resume to continue it or choose another --output")
        return _train(recipe, out, resume)


def _train(recipe, out: Path, resume: bool) -> Run:
    strategy = runtime.configure(recipe.runtime)
    task = get_task(recipe.task)
    train_split = load_split(recipe, task, recipe.data.train_split)
    info = _with_num_classes(recipe, train_split.info)
    _check_classes(task, info)
    changed = run_dir.check_resume(out, recipe, info.class_names) if resume else []
    eval_split = load_split(recipe, task, recipe.data.eval_split, truth=info)
    with strategy.scope():
        model = build_model(recipe, task, info)
    task.attach(model)
    train_ds = task.make_dataset(train_split, recipe, True, _should_cache(recipe, task, train_split))
    eval_ds = task.make_dataset(eval_split, recipe, False, _should_cache(recipe, task, eval_split))
    steps = _steps_per_epoch(recipe, train_ds, info)

    with strategy.scope():
        model.compile(optimizer=build_optimizer(recipe.train, steps),
                      loss=task.loss(info, **recipe.train.loss), metrics=task.metrics(info),
                      steps_per_execution=recipe.runtime.steps_per_execution)
        guard = run_dir.DivergenceGuard()
        checkpoint = run_dir.Checkpoint(out / "checkpoints", guard)
        initial_epoch = checkpoint.restore(model)  # before anything is written: it may not fit

    for line in changed:
        print(f"resuming with a changed recipe key: {line}", flush=True)
    run_dir.write_atomic(out / "recipe.yaml", recipe.to_yaml())
    run_dir.write_atomic(out / "dataset.json", json.dumps({"class_names": info.class_names, **info.extras}))
    callbacks = [
        EpochTimer(),
        guard,
        run_dir.HistoryLog(out / "history.csv", initial_epoch, guard),
        checkpoint,
        keras.callbacks.TensorBoard(str(out / "logs"), profile_batch=0, write_graph=False),
        EpochSummary(),
    ]
    resumed = f", resuming after epoch {initial_epoch}" if initial_epoch else ""
    print(f"training {recipe.model.name} ({model.count_params():,} parameters) on "
          f"{recipe.data.source}:{recipe.data.name or recipe.data.path}, "
          f"{strategy.num_replicas_in_sync} replica(s), policy {keras.config.dtype_policy().name}; "
          f"run directory {out}{resumed}", flush=True)
    with data_errors(train_split, eval_split):
        history = model.fit(train_ds, epochs=recipe.train.epochs, initial_epoch=initial_epoch,
                            steps_per_epoch=steps, validation_data=eval_ds if recipe.train.validate else None,
                            callbacks=callbacks, verbose=recipe.train.verbose, shuffle=False)
    if guard.tripped:
        raise ZooError(guard.message(keras.config.dtype_policy().name, checkpoint.epoch, out / "checkpoints"))
    run_dir.save_model_atomic(model, out / "model.keras")
    save_curves(out / "history.csv", out / "curves.png")
    with data_errors(eval_split):
        metrics = task.evaluate(model, task.make_eval_dataset(eval_split, recipe, eval_ds), info)
    run_dir.write_atomic(out / "metrics.json", json.dumps(metrics, indent=2))
    print("metrics: " + json.dumps(metrics), flush=True)
    return Run(out, model, metrics, history.history)


def run_info(weights) -> DatasetInfo | None:
    """The class list saved with the run that `weights` (a run directory or a model file inside
    one) belongs to: the truth for evaluating them; None for weights from elsewhere."""
    path = Path(str(weights))
    if weights is None or not path.exists():  # none, or a pretrained tag
        return None
    meta = (path if path.is_dir() else path.parent) / "dataset.json"
    if not meta.is_file():
        return None
    saved = json.loads(meta.read_text())
    names = saved.pop("class_names")
    return DatasetInfo(len(names), names, extras=saved)


def load_weights_into(recipe, task, info, weights):
    """A model for evaluation: a `.keras` file, a `.weights.h5` file, or a pretrained tag."""
    path = Path(str(weights))
    if path.suffix == ".keras":
        return load_model_file(path)
    args = task.model_args(recipe, info)
    pretrained = True if weights == "pretrained" else weights
    return create_model(recipe.model.name, pretrained=pretrained, **args, **recipe.model.params)


def write_metrics(output_dir, metrics: dict):
    """`metrics.json` in `output_dir`; a place that cannot be written is a one-line ZooError."""
    path = Path(output_dir) / "metrics.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        run_dir.write_atomic(path, json.dumps(metrics, indent=2))
    except OSError as err:
        raise ZooError(f"cannot write {path}: {err.strerror or err}") from None


def evaluate(recipe, weights=None, output_dir=None) -> dict:
    """Measure a model on the recipe's eval split; `weights` as in `load_weights_into`. The
    classes of the run the weights come from (its dataset.json) are the truth for the split."""
    recipe = _as_recipe(recipe)
    strategy = runtime.configure(recipe.runtime)
    task = get_task(recipe.task)
    split = load_split(recipe, task, recipe.data.eval_split, truth=run_info(weights))
    info = _with_num_classes(recipe, split.info)
    with strategy.scope():
        if weights is None:
            print("warning: no --weights given; evaluating randomly initialized weights", flush=True)
            model = build_model(recipe, task, info)
        else:
            model = load_weights_into(recipe, task, info, weights)
    task.attach(model)
    dataset = task.make_dataset(split, recipe, False, cache=False)
    dataset = task.make_eval_dataset(split, recipe, dataset)
    predicted = task.model_num_classes(model)
    if predicted != info.num_classes:
        raise ZooError(f"the model predicts {predicted} classes but the evaluation data has "
                       f"{info.num_classes} ({preview(info.class_names)}): the weights {weights} were "
                       f"not trained on these classes")
    with data_errors(split):
        metrics = task.evaluate(model, dataset, info)
    if output_dir is not None:
        write_metrics(output_dir, metrics)
    return metrics
