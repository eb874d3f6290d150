"""Detection NMS modes on the shipped weights: COCO mAP of the serving graph (what `zoo predict`,
`zoo.load_predictor` and `zoo export` run) with class-agnostic NMS (the default) and with per-class
NMS (`--no-agnostic-nms`, what `zoo evaluate` runs), on the same first N test images.

    python benchmarks/nms_modes.py [--weights retinanet_small.shapes] [--images 200]
"""
import argparse
import time

from zoo import export as ex
from zoo.model_source import load_run
from zoo.tasks import get_task


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="retinanet_small.shapes")
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    model, recipe, info, _ = load_run(args.weights)
    task = get_task(recipe.task)
    for agnostic in (True, False):
        serving = task.serving_model(model, recipe, agnostic_nms=agnostic)
        start = time.perf_counter()
        metrics = ex.evaluate_exported(serving.predict_on_batch, recipe, task, info, args.images)
        print(f"agnostic_nms={agnostic!s:5}  mAP {metrics['mAP']:.4f}  mAP50 {metrics['mAP50']:.4f}  "
              f"mAP75 {metrics['mAP75']:.4f}  ({metrics['num_examples']} images, {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
