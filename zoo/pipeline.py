"""train() and evaluate(): the one path every task goes through.

recipe -> runtime (policy, strategy) -> source -> task.prepare -> batched tf.data ->
model (built under the strategy's scope) -> compile with the task's loss and metrics ->
fit (the head alone for train.freeze_epochs, then every layer: two fits, one optimizer; the
main metric every train.eval_every epochs, best.keras, early stopping) -> task.evaluate ->
run directory.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from zoo import cluster, run_dir, runtime
from zoo.data import DatasetInfo, load_split, preview
from zoo.data.holdout import validation_split
from zoo.data.image_files import oversized_image
from zoo.fit_callbacks import EpochSummary, EpochTensorBoard, EpochTimer, HeadOnly, MainMetric
from zoo.errors import DataError, RecipeError, ZooError, cannot_write, make_folder
from zoo.export import data_description
from zoo.models import create_model, get_entry, get_spec, load_model_file
from zoo.optim import build_optimizer
from zoo.plots import save_curves
from zoo.recipe import Recipe, check_run_name, load_recipe
from zoo.report import Report
from zoo.resume import RECORDED_BACKEND, RESOLVED, absolute_data_paths, backend_history, check_resume
from zoo.tasks import get_task
from zoo.tasks.base import progress

CACHE_BUDGET_BYTES = 1 << 30  # data.cache=auto caches a split estimated below this (ZOO_CACHE_BUDGET_BYTES)


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
        check_run_name(recipe.name)  # the folder of its runs: a name, never a path
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
    """Turn a decode failure (or a split holding another number of examples than it declares:
    FailedPrecondition) deep inside tf.data into one line naming the bad file."""
    try:
        yield
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, tf.errors.DataLossError,
            tf.errors.FailedPreconditionError) as err:
        if oversized_image(err):
            raise DataError(oversized_image(err)) from None
        for split in splits:
            if split.diagnose is not None:
                split.diagnose(err)
        raise


def _phases(initial_epoch: int, freeze_epochs: int, epochs: int) -> list[tuple]:
    """(first epoch, end epoch, head only) of each `model.fit` still to run."""
    phases = [(initial_epoch, freeze_epochs, True)] if initial_epoch < freeze_epochs else []
    start = max(initial_epoch, freeze_epochs)
    return phases + ([(start, epochs, False)] if start < epochs else [])


def resolved_header(strategy, backend: str | None = None) -> str:
    """YAML comments at the top of a run's recipe.yaml: what `auto` resolved to, the versions and
    the backend that ran (`backend`: `backend_history` of a resumed run; comments, so the file
    still loads back as the recipe)."""
    from zoo.version import __version__

    names = {"MirroredStrategy": "mirrored", "MultiWorkerMirroredStrategy": "multi_worker",
             "TPUStrategy": "tpu", "TPUStrategyV2": "tpu"}
    distribution = getattr(strategy, "distribution_name", None) or names.get(type(strategy).__name__, "none")
    return (f"{RESOLVED}{keras.config.dtype_policy().name}, "
            f"runtime.distribution {distribution} ({strategy.num_replicas_in_sync} replica(s))\n"
            f"# versions: keras-zoo {__version__}, keras {keras.__version__}, "
            f"tensorflow {tf.__version__}, python {platform.python_version()}\n"
            f"{RECORDED_BACKEND}{backend or runtime.backend_description()}\n")


def _steps_per_epoch(recipe, dataset, info, held_out: int = 0) -> int:
    """`held_out`: examples of the training split carved out to validate (data.val_split)."""
    if recipe.train.steps_per_epoch:
        return recipe.train.steps_per_epoch
    steps = int(dataset.cardinality())
    if steps == 0:
        after = f" after holding out {held_out} to validate (data.val_split)" if held_out else ""
        raise DataError(f"the training split has {info.num_examples} examples{after}, fewer than one batch "
                        f"(data.batch_size={recipe.data.batch_size})")
    if steps < 0:
        raise DataError("the training split is of unknown size; set train.steps_per_epoch")
    return steps


def _should_cache(recipe, task, split) -> bool:
    setting = recipe.data.cache
    if setting != "auto":
        return setting
    n = split.info.num_examples
    return n is not None and n * task.example_bytes(recipe) < cache_budget()


def cache_budget() -> int:
    """The bytes under which data.cache=auto caches a split: ZOO_CACHE_BUDGET_BYTES, else CACHE_BUDGET_BYTES."""
    value = os.environ.get("ZOO_CACHE_BUDGET_BYTES", "").strip()
    if not value:
        return CACHE_BUDGET_BYTES
    if not value.isdigit():
        raise ZooError(f"ZOO_CACHE_BUDGET_BYTES: expected a whole number of bytes, got {value[:40]!r}")
    return int(value)


def _with_num_classes(recipe, info):
    if recipe.data.num_classes is not None:
        info.num_classes = recipe.data.num_classes
    return info


def _check_classes(task, info):
    if info.num_classes < task.min_classes:
        raise DataError(f"the training split has {info.num_classes} class(es) "
                        f"({preview(info.class_names) or 'none'}): {task.name} needs at "
                        f"least {task.min_classes}")


def splits_description(recipe, val_split, eval_split, validated_on, drawn) -> str:
    """What chooses and what is reported, for the start line: "validating on 10% of train (144
    examples, stratified, seed 0); reporting on test (360 examples)"."""
    def examples(split, detail=None):
        n = split.info.num_examples
        size = f"{n:,} examples" if n else "size unknown"
        return f"({size}, {detail})" if detail else f"({size})"

    validating = (f"validating on {validated_on} {examples(val_split, drawn)}" if val_split is not None
                  else "not validating (train.validate false)")
    return f"{validating}; reporting on {recipe.data.eval_split} {examples(eval_split)}"


def best_metrics(best, last_epoch: int, last: dict, path: Path, evaluate, strategy) -> dict:
    """metrics.json's `best_epoch` (1-based) and `best/<metric>`: best.keras measured by
    `evaluate` (the eval split), or the last model's numbers `last` when the best epoch is the
    last one; nothing without best.keras."""
    if best is None or best.best_epoch is None or not path.is_file():
        return {}
    if best.best_epoch == last_epoch:
        numbers = last
    else:
        with strategy.scope():
            numbers = evaluate(load_model_file(path))
    return {"best_epoch": best.best_epoch, **{f"best/{k}": v for k, v in numbers.items() if k != "num_examples"}}


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
    """Train a recipe; write recipe.yaml, history.csv, model.keras, metrics.json, logs/. In a
    multi-worker job the chief writes them; every other worker, a temporary directory."""
    recipe = _as_recipe(recipe)
    worker = runtime.this_worker(recipe.runtime)  # a bad TF_CONFIG: one line, before TensorFlow starts
    out = resolve_output_dir(recipe, output_dir, resume)
    if worker.task:
        print(worker.describe(), flush=True)
    with cluster.lost_workers(worker), run_dir.disk_full_hint(out):
        if not worker.is_chief:
            _check_new_run(out, resume)
            with run_dir.worker_directory(worker.rank, out if resume else None) as scratch:
                return _train(recipe, out, resume, worker, scratch)
        with run_dir.locked(out):  # first: a trainer already in `out` is named, with --resume or without
            _check_new_run(out, resume)
            return _train(recipe, out, resume, worker, out)


def _check_new_run(out: Path, resume: bool):
    if not resume and ((out / "checkpoints").exists() or (out / "model.keras").exists()):
        raise ZooError(f"{out} already holds a run; pass --resume to continue it or choose another --output")


def _check_workers_agree(strategy, out: Path, resumed_epoch: int, steps: int, epochs: int):
    """Every worker must run the same epochs and steps, or one waits forever for the others'
    collective ops: compare them across workers before training."""
    rows = runtime.gather_from_workers(strategy, [resumed_epoch, steps, epochs])  # one per replica (jax: worker)
    resumed, step_counts, epoch_counts = (sorted(set(column.tolist())) for column in rows.T)
    if len(resumed) > 1:
        raise ZooError(f"--resume: the workers would resume after different epochs ({resumed}): every worker "
                       f"reads the checkpoints in {out / 'checkpoints'}, so the run directory must be on "
                       f"storage that all of them share")
    if len(step_counts) > 1 or len(epoch_counts) > 1:
        raise RecipeError(f"the workers' recipes differ (train.epochs {epoch_counts}, steps per epoch "
                          f"{step_counts}): start every worker with the same recipe and overrides")


def _train(recipe, out: Path, resume: bool, worker: cluster.Worker, write_dir: Path) -> Run:
    """`write_dir`: where this process writes, the run directory `out` (the chief) or its own."""
    recipe = absolute_data_paths(recipe)  # what recipe.yaml records: the data this run reads
    strategy = runtime.configure(recipe.runtime, batch_size=recipe.data.batch_size)
    task = get_task(recipe.task)
    train_split = load_split(recipe, task, recipe.data.train_split)
    info = _with_num_classes(recipe, train_split.info)
    _check_classes(task, info)
    changed = check_resume(out, recipe, info.class_names) if resume else []
    # What chooses (val_split) is never what metrics.json reports (eval_split).
    train_split, val_split, validated_on, drawn = validation_split(recipe, task, train_split, info)
    eval_split = load_split(recipe, task, recipe.data.eval_split, truth=info)
    with strategy.scope():
        model = build_model(recipe, task, info)
    task.attach(model)
    train_ds = runtime.auto_shard(task.make_dataset(train_split, recipe, True,
                                                    _should_cache(recipe, task, train_split)))
    val_ds = val_split and runtime.auto_shard(task.make_dataset(
        val_split, recipe, False, _should_cache(recipe, task, val_split)), evaluation=True)
    held_out = val_split.info.num_examples if drawn else 0  # carved out of the training split
    steps = _steps_per_epoch(recipe, train_ds, train_split.info, held_out)
    cfg = recipe.train
    head_only = HeadOnly(model, get_entry(recipe.model.name).head) if cfg.freeze_epochs else None

    def compile_model(optimizer):  # the same optimizer object: its step count and slots go on
        with strategy.scope():
            loss = task.loss(info, **cfg.loss)  # first: a task may derive metrics from its loss
            model.compile(optimizer=optimizer, loss=loss, metrics=task.metrics(info),
                          steps_per_execution=recipe.runtime.steps_per_execution)
        # Keras saves the jit_compile its "auto" resolved to here (True on jax): a model.keras
        # trained on jax would run torch.compile wherever torch loads it. Saved as "auto".
        model._compile_config.config["jit_compile"] = "auto"

    with strategy.scope():
        compile_model(build_optimizer(cfg, steps))  # the optimizer's variables: under the strategy
        # Built for every variable the model trains when unfrozen, so the head-only epochs and
        # the checkpoints use one optimizer state.
        model.optimizer.build(model.trainable_variables)
        guard = run_dir.DivergenceGuard()
        checkpoint = run_dir.Checkpoint(write_dir / "checkpoints", guard)
        if worker.task:  # before restoring, which runs collective ops on the workers that restore
            _check_workers_agree(strategy, out, checkpoint.epoch, steps, cfg.epochs)
        initial_epoch = checkpoint.restore(model)  # before anything is written: it may not fit

    for line in changed:
        print(f"resuming with a changed recipe key: {line}", flush=True)
    backend = backend_history(write_dir / "recipe.yaml", runtime.backend_description()) if resume else None
    run_dir.write_atomic(write_dir / "recipe.yaml", resolved_header(strategy, backend) + recipe.to_yaml())
    run_dir.write_atomic(write_dir / "dataset.json", json.dumps({"class_names": info.class_names, **info.extras}))
    history_log = run_dir.HistoryLog(write_dir / "history.csv", initial_epoch, guard)
    evaluator = best = None
    if cfg.validate:
        main = task.main_metric
        if main not in {m.name for m in task.metrics(info)}:  # Keras' validation does not compute it
            evaluator = MainMetric(task, task.make_eval_dataset(val_split, recipe, val_ds), info,
                                   cfg.eval_every, guard)

        def save_best():
            with head_only.unfrozen() if head_only else contextlib.nullcontext():
                run_dir.save_model_atomic(model, write_dir / "best.keras")

        patience = cfg.early_stopping.patience if cfg.early_stopping else None
        best = run_dir.BestModel(f"val_{main}", save_best, guard, patience, history_log.rows)
    # In this order: what adds to an epoch's logs (the main metric, the time) before what reads them.
    callbacks = [*runtime.fit_callbacks(),  # first: how the distribution lays out the batches
                 *(c for c in (guard, evaluator, EpochTimer(), best, history_log, checkpoint) if c is not None)]
    resumed = f", resuming after epoch {initial_epoch}" if initial_epoch else ""
    if write_dir != out:
        resumed += f" (written by the chief; this worker writes {write_dir}, removed at the end)"
    splits = splits_description(recipe, val_split, eval_split, validated_on, drawn)
    print(f"training {recipe.model.name} ({model.count_params():,} parameters) on "
          f"{data_description(recipe.data)}; {splits}; {strategy.num_replicas_in_sync} replica(s), "
          f"policy {keras.config.dtype_policy().name} ({runtime.policy_reason(recipe.runtime)}); "
          f"run directory {out}{resumed}", flush=True)
    histories = []
    stopped = best is not None and best.stopped  # a resumed run that had stopped early: finish it
    phases = [] if stopped else _phases(initial_epoch, cfg.freeze_epochs, cfg.epochs)
    for first, end, frozen in phases:
        if head_only and frozen != head_only.frozen:
            if frozen:
                head_only.freeze()
            else:
                head_only.restore()
            compile_model(model.optimizer)
        if head_only:
            trainable = sum(math.prod(v.shape) for v in model.trainable_variables)
            what = (f"only the head ({', '.join(layer.name for layer in head_only.head)}: {trainable:,} "
                    f"trainable parameters)" if frozen else "every layer (train.freeze_epochs is over)")
            print(f"epochs {first + 1}-{end}: training {what}", flush=True)
        tensorboard = EpochTensorBoard(str(write_dir / "logs"), profile_batch=0, write_graph=False)
        with data_errors(train_split, *[val_split] * bool(val_split)):
            histories.append(model.fit(
                train_ds, epochs=end, initial_epoch=first, steps_per_epoch=steps,
                validation_data=val_ds, validation_freq=cfg.eval_every,
                callbacks=[*callbacks, tensorboard, EpochSummary(cfg.epochs)], verbose=cfg.verbose, shuffle=False))
        if guard.tripped or (best is not None and best.stopped):
            break
    if guard.tripped:
        raise ZooError(guard.message(keras.config.dtype_policy().name, checkpoint.epoch, out / "checkpoints"))
    if best is not None and best.stopped:
        print(best.message(), flush=True)
    if head_only:
        head_only.restore()  # the saved model records every layer's own setting
    run_dir.save_model_atomic(model, write_dir / "model.keras")
    save_curves(write_dir / "history.csv", write_dir / "curves.png", task.main_metric)
    eval_ds = runtime.auto_shard(task.make_dataset(eval_split, recipe, False,
                                                   _should_cache(recipe, task, eval_split)), evaluation=True)
    eval_ds = task.make_eval_dataset(eval_split, recipe, eval_ds)
    report = Report(write_dir / "eval")  # the last model's evaluation report
    with data_errors(eval_split):
        metrics = task.evaluate(model, eval_ds, info, report=report)
        validated = (f"{validated_on} ({drawn})" if drawn else validated_on) or "none (train.validate false)"
        metrics = {**metrics, "eval_split": recipe.data.eval_split, "val_split": validated,
                   **best_metrics(best, checkpoint.epoch, metrics, write_dir / "best.keras",
                                  lambda best_model: task.evaluate(best_model, eval_ds, info), strategy)}
    recorded = {**metrics, "backend": runtime.backend_description()}  # the Keras backend that trained
    run_dir.write_atomic(write_dir / "metrics.json", json.dumps(recorded, indent=2))
    print_table(report)
    print("metrics: " + json.dumps(recorded), flush=True)
    report.check()  # an eval/ folder that could not be written: one line, once the metrics are out
    merged = {}
    for history in histories:
        for key, values in history.history.items():
            merged.setdefault(key, []).extend(values)
    return Run(out, model, recorded, merged)


def run_info(weights, model_name: str) -> DatasetInfo | None:
    """The class list of `weights`, the truth for evaluating them: saved with the run they belong
    to (a run directory or a model file inside one), or a pretrained tag's (`pretrained`: the
    model's default tag) from the weights table; None for weights from elsewhere."""
    path = Path(str(weights))
    if weights is None:
        return None
    if not path.exists():  # a pretrained tag, or a file or URL that `load_weights_into` reports
        if weights != "pretrained" and (path.suffix or "/" in str(weights)):
            return None
        spec = get_spec(model_name if weights == "pretrained" else f"{model_name}.{weights}")
        names = list(spec.class_names)
        return DatasetInfo(len(names), names) if names else None
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


def write_metrics(output_dir, metrics: dict, eval_split: str):
    """`metrics.json` in `output_dir`, labelled as a run's (the split measured, the backend); a place
    that cannot be written is a one-line ZooError."""
    path = Path(output_dir) / "metrics.json"
    make_folder(path.parent)
    labelled = {**metrics, "eval_split": eval_split, "backend": runtime.backend_description()}
    try:
        run_dir.write_atomic(path, json.dumps(labelled, indent=2))
    except OSError as err:
        raise cannot_write(path, err) from None


def evaluate(recipe, weights=None, output_dir=None, report=None, verbose=None) -> dict:
    """Measure a model on the recipe's eval split; `weights` as in `load_weights_into`. The
    classes of the run the weights come from (its dataset.json) are the truth for the split.
    Prints the per-class table; writes the report folder `report` (default: `output_dir`/eval/
    with an `output_dir`, else none) and `output_dir`/metrics.json. A folder that cannot be
    written is a one-line ZooError once the metrics are computed (a `zoo.report.Report` given
    instead of a folder: its `check()` is the caller's).
    `verbose`: a progress bar over the batches (default: when stdout is a terminal)."""
    given = isinstance(report, Report)
    if not given:
        report = evaluation_report(report, output_dir)
    recipe = _as_recipe(recipe)
    strategy = runtime.configure(recipe.runtime)
    task = get_task(recipe.task)
    split = load_split(recipe, task, recipe.data.eval_split, truth=run_info(weights, recipe.model.name))
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
    if verbose is None:
        verbose = int(sys.stdout.isatty())
    with data_errors(split), progress(verbose):
        metrics = task.evaluate(model, dataset, info, report=report)
    print_table(report)
    if output_dir is not None:
        write_metrics(output_dir, metrics, recipe.data.eval_split)
    if not given:
        report.check()
    return metrics


def evaluation_report(folder=None, output_dir=None):
    """The report of one evaluation: written into `folder`, else `output_dir`/eval/, else nowhere
    (nothing is written where the user did not point; the table is printed either way)."""
    return Report(folder if folder is not None or output_dir is None else Path(output_dir) / "eval")


def print_table(report):
    """The report's per-class table(s) on stdout, then a blank line (what follows is apart)."""
    text = report.text()
    if text:
        print(text + "\n", flush=True)
