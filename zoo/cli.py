"""The `zoo` command: a thin layer over the Python API.

Exit status: 0 success, 2 bad usage / recipe / data (one line on stderr), 1 anything else.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import sys


def _parser() -> argparse.ArgumentParser:
    from zoo.export import DTYPES, FORMATS
    from zoo.tasks import TASKS

    parser = argparse.ArgumentParser(prog="zoo", description="keras-zoo: train, evaluate and use vision models.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="registered models")
    p.add_argument("pattern", nargs="?", default="*")
    p.add_argument("--task", choices=list(TASKS))
    p.add_argument("--pretrained", action="store_true", help="only models with pretrained weights")
    p.add_argument("--json", action="store_true", help="with --pretrained: every weight's model card as one "
                                                       "JSON array (builds each model to count its FLOPs)")

    p = sub.add_parser("info", help="the model card: architecture, parameters, FLOPs and, for MODEL.TAG, the "
                                    "input the weights expect, their data, metrics, recipe, licence and limits")
    p.add_argument("model", help="a registered model, or its weights as `zoo list --pretrained` names them "
                                 "(e.g. digits_cnn.digits)")

    p = sub.add_parser("recipes", help="recipes shipped under recipes/")
    p.add_argument("pattern", nargs="?", default="*")
    p.add_argument("--task", choices=list(TASKS))

    for name in ("train", "evaluate"):
        p = sub.add_parser(name, help=f"{name} a recipe (a path or a shipped recipe's name)")
        p.add_argument("recipe")
        p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted recipe overrides")
        p.add_argument("--output", help="run directory")
        if name == "train":
            p.add_argument("--resume", action="store_true", help="continue from the run's checkpoints")
        else:
            p.add_argument("--weights", help="a .keras / .weights.h5 file, a pretrained tag, or 'pretrained'")
            p.add_argument("--report", help="folder for the evaluation report: per-class table, confusion "
                                            "matrix, precision-recall curves, worst predictions (default: "
                                            "eval/ in the --output folder; none without --output)")

    p = sub.add_parser("predict", help="predict on images (or clips) with a run directory, a model file "
                                       "or pretrained weights")
    p.add_argument("model", help="a run directory, a .keras file, or pretrained weights as `zoo list "
                                 "--pretrained` names them (e.g. retinanet_small.shapes)")
    p.add_argument("inputs", nargs="+", help="image files (clip folders / videos for video models); "
                                             "a folder: each of them in it")
    p.add_argument("--output", help="where pictures of the predictions go (default: predictions/ in the "
                                    "run directory, beside a model file, or in the current directory)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per input (JSON Lines) instead of text lines")
    p.add_argument("--max-pixels", type=_positive_int,
                   help="the largest image read, in pixels (default: the run's data.max_pixels)")
    _agnostic_nms_option(p)

    p = sub.add_parser("convert", help="write a recipe's training and eval splits (and a named val_split) as "
                                       "sharded TFRecord files (data.source=tfrecord reads them)")
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted recipe overrides")
    p.add_argument("--output", required=True, help="folder for the shards (local or e.g. gs://)")
    p.add_argument("--shards", type=_positive_int, help="files per split (default: one per 1024 examples)")

    p = sub.add_parser("export", help="export a model to SavedModel, LiteRT or ONNX: raw uint8 images of any "
                                      "size in, the task's answer out (docs/deploy.md)")
    p.add_argument("model", help="a run directory, a .keras file, or pretrained weights (e.g. retinanet_small.shapes)")
    p.add_argument("--format", required=True, choices=list(FORMATS))
    p.add_argument("--dtype", default="float32", choices=DTYPES,
                   help="float16 / int8: litert and onnx; int8 is calibrated on the recipe's training images")
    p.add_argument("--output", help="folder for the export (default: export/ in the run directory, else ./export)")
    p.add_argument("--benchmark", action="store_true",
                   help="print latency per image of the Keras model and of the export, side by side")
    _agnostic_nms_option(p)
    return parser


def _agnostic_nms_option(parser):
    parser.add_argument("--agnostic-nms", action=argparse.BooleanOptionalAction,
                        help="detection: NMS over all classes, one box per object (default), or per class "
                             "(--no-agnostic-nms, as COCO evaluation); alike in zoo predict, zoo export and "
                             "zoo.load_predictor(agnostic_nms=...)")


def _serving_options(args) -> dict:
    return {} if args.agnostic_nms is None else {"agnostic_nms": args.agnostic_nms}


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


LINE_CHARS = 1000  # the longest error line the CLI prints

# The positional list that takes KEY=VALUE overrides / inputs given after an option.
TRAILING = {"train": "overrides", "evaluate": "overrides", "predict": "inputs", "convert": "overrides"}


def parse_args(argv=None) -> argparse.Namespace:
    """Options and trailing positionals in any order: argparse's `nargs="*"` list stops at the
    first option, so the words left over after it join the command's positional list."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    unknown = [word for word in extra if word.startswith("-") or args.command not in TRAILING]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        getattr(args, TRAILING[args.command]).extend(extra)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # to run the command again elsewhere
    return args


def format_metrics(metrics: dict) -> str:
    shown = {k: v for k, v in metrics.items() if k != "num_examples"}
    return ", ".join(f"{k} {v:.4f}" if 0 <= v <= 1 else f"{k} {v:.4g}" for k, v in shown.items()) or "—"


def format_shape(shape) -> str:
    return "x".join(str(s) for s in shape)


def cmd_list(args):
    from zoo.models import get_entry, list_models
    from zoo.registry import KERAS_APPLICATIONS, pretrained_specs

    if args.json:  # the model card of each weight
        from zoo.errors import ZooError
        from zoo.model_cards import pretrained_cards

        if not args.pretrained:
            raise ZooError("zoo list --json prints the model cards of the weights: add --pretrained")
        print(json.dumps(pretrained_cards(args.pattern, task=args.task), indent=1))
        return
    if args.pretrained:  # one line per weight: dataset, input size, measured metric
        for spec in pretrained_specs(args.pattern, task=args.task):
            by = "keras" if spec.format == KERAS_APPLICATIONS else "zoo"  # who measured the metrics
            print(f"{spec.name:28s} {get_entry(spec.model).task:15s} {format_shape(spec.input_size):10s} "
                  f"{spec.num_classes:5d} classes  {by:5s}  {format_metrics(spec.metrics):36s} {spec.dataset}")
        return
    for name in list_models(args.pattern, task=args.task):
        entry = get_entry(name)
        tags = f"  pretrained: {', '.join(entry.pretrained)}" if entry.pretrained else ""
        print(f"{name:24s} {entry.task:15s} {format_shape(entry.input_shape):12s} {entry.citation}{tags}")


def cmd_info(args):
    from zoo.model_cards import card, format_card

    print("\n".join(format_card(card(args.model))))


def data_needed(data: dict) -> str:
    """What a recipe's data takes: nothing (embedded, generated), a TFDS download, or the user's files."""
    source = data.get("source", "tfds")
    if source == "tfds":
        return f"TFDS download: {data.get('name') or '?'}"
    return {"digits": "embedded", "synthetic": "generated"}.get(source, f"your folder ({source}, data.path)")


def expected_metric(path, name: str) -> str:
    """The first (main) metric of the zoo weight this recipe trained (the weights table), else what
    the recipe's comments say to expect, else "—"."""
    from zoo.recipe import expected_comment
    from zoo.weights_table import ZOO_WEIGHTS

    for row in ZOO_WEIGHTS:
        if row["recipe"] == name:
            metric, value = next(iter(row["metrics"].items()))
            return f"{metric} {value:.4f} (measured: weights {row['model']}.{row['tag']})"
    return expected_comment(path) or "—"


def cmd_recipes(args):
    import fnmatch

    from zoo.recipe import recipe_fields, shipped_recipes

    rows = [("NAME", "TASK", "MODEL", "DATA", "EXPECTED")]
    for path in shipped_recipes():
        fields = recipe_fields(path)
        task = str(fields.get("task", "?"))
        if fnmatch.fnmatch(path.stem, args.pattern) and args.task in (None, task):
            rows.append((path.stem, task, str((fields.get("model") or {}).get("name", "?")),
                         data_needed(fields.get("data") or {}), expected_metric(path, path.stem)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])


def cmd_train(args):
    import zoo

    recipe = zoo.load_recipe(args.recipe, args.overrides)  # a typo is named before TensorFlow loads
    run = zoo.train(recipe, output_dir=args.output, resume=args.resume)
    print(f"run directory: {run.output_dir}")


def cmd_evaluate(args):
    import zoo

    recipe = zoo.load_recipe(args.recipe, args.overrides)  # a typo is named before TensorFlow loads
    from zoo.pipeline import evaluation_report, write_metrics

    report = evaluation_report(args.report, args.output)
    metrics = zoo.evaluate(recipe, weights=args.weights, report=report)  # prints the per-class table
    print(json.dumps(metrics), flush=True)  # before writing: an unwritable --output loses nothing
    if args.output:
        write_metrics(args.output, metrics, recipe.data.eval_split)
    report.check()  # a report folder that could not be written


def cmd_predict(args):
    from zoo.predict import describe, iter_predict, to_json

    for prediction in iter_predict(args.model, args.inputs, args.output, args.max_pixels, **_serving_options(args)):
        for line in [to_json(prediction)] if args.json else describe(prediction):
            print(line, flush=True)  # each input's lines as soon as they exist


def cmd_convert(args):
    import shlex

    import zoo

    recipe = zoo.load_recipe(args.recipe, args.overrides)  # a typo is named before TensorFlow loads
    from zoo.convert import convert

    convert(recipe, args.output, args.shards)
    kept = [o for o in args.overrides if o.partition("=")[0].strip() not in ("data.source", "data.path")]
    print("train from it: " + shlex.join(["zoo", "train", args.recipe, *kept, "data.source=tfrecord",
                                          f"data.path={args.output}"]))


def cmd_export(args):
    import keras
    import numpy as np

    from zoo import export as ex

    if keras.backend.backend() != "tensorflow":  # a model.keras from any backend loads under TensorFlow
        import subprocess

        print(f"zoo export runs on the TensorFlow backend: re-running it with KERAS_BACKEND=tensorflow "
              f"(this session: {keras.backend.backend()})", flush=True)
        status = subprocess.call([sys.executable, "-m", "zoo.cli", *args.argv],
                                 env={**os.environ, "KERAS_BACKEND": "tensorflow"})
        if status:
            raise SystemExit(status)  # the subprocess has said why
        return
    exported = ex.export(args.model, args.format, args.dtype, args.output, **_serving_options(args))
    print(f"exported {args.model} ({exported.task.name}, {args.dtype}) to {exported.path}", flush=True)
    run = ex.load_exported(exported.path)
    inputs = ex.sample_inputs(exported)
    gaps = ", ".join(f"{name} {gap:.2g}" for name, gap in ex.differences(exported, run, inputs).items())
    print(f"largest |Keras - export| over {len(inputs)} inputs: {gaps}")
    if args.benchmark:
        print("latency per image, median of 20 runs after 3 warm-up runs:")
        for batch in (1,) if args.format == "litert" else (1, 4):
            images = np.stack([inputs[0]] * batch)
            keras_s = ex.latency(exported.serving.predict_on_batch, images)
            export_s = ex.latency(run, images)
            print(f"  batch {batch}: Keras {1000 * keras_s:.2f} ms, {args.format} {args.dtype} "
                  f"{1000 * export_s:.2f} ms ({keras_s / export_s:.2f}x)")


COMMANDS = {"list": cmd_list, "info": cmd_info, "recipes": cmd_recipes, "train": cmd_train,
            "evaluate": cmd_evaluate, "predict": cmd_predict, "convert": cmd_convert,
            "export": cmd_export}


def main(argv=None) -> int:
    args = parse_args(argv)
    from zoo.errors import QUOTE_CHARS, ZooError, quote
    from zoo.tf_logs import quiet_tensorflow

    quiet_tensorflow(args.debug)

    try:
        COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
    except ZooError as err:
        if args.debug:
            raise
        print(f"zoo: error: {quote(str(err), as_repr=False, limit=LINE_CHARS)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `zoo list | head`: the reader has gone, which is no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except OSError as err:
        if args.debug:
            raise
        if err.errno == errno.ENAMETOOLONG:  # a path given in a recipe or on the command line
            print(f"zoo: error: file name too long: {quote(err.filename, limit=QUOTE_CHARS)}", file=sys.stderr)
            return 2
        return _unexpected(err)
    except Exception as err:
        if args.debug:
            raise
        return _unexpected(err)
    return 0


def _unexpected(err) -> int:
    """Anything else is our bug or the machine's: one line (cut to a readable length), status 1."""
    from zoo.errors import quote

    first = str(err).splitlines()[0] if str(err) else ""
    print(f"zoo: error: {type(err).__name__}: {quote(first, as_repr=False, limit=LINE_CHARS)} "
          "(run with --debug for the traceback)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
