"""The classification (and video) report: a per-class precision / recall / F1 / support table,
the confusion matrix, one-vs-rest precision-recall curves from the scores and the most confident
mistakes with their pictures (`zoo.report`).

Precision-recall curves are COCO's: precision made monotone (the best precision at any higher
recall) and read at the 101 recall levels 0, 0.01, .., 1; a class's AP is their mean.
"""
from __future__ import annotations

import numpy as np

from zoo.report import GALLERY, save_confusion_matrix, save_gallery, save_pr_curves, short_label

RECALL_LEVELS = np.linspace(0.0, 1.0, 101)


def confusion_counts(labels, predicted, num_classes: int) -> np.ndarray:
    """(C, C) int64: [i, j] = examples of true class i predicted j."""
    index = np.asarray(labels, np.int64) * num_classes + np.asarray(predicted, np.int64)
    return np.bincount(index, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def per_class_rows(matrix, names) -> tuple[list, list]:
    """(rows, totals) of the per-class table: [class, precision, recall, F1, support]; a value
    with nothing to divide is None (precision of a class never predicted, recall and F1 of a
    class neither true nor predicted). Totals: the macro average over the classes with examples
    and the average weighted by support."""
    matrix = np.asarray(matrix, np.float64)
    tp, predicted, support = np.diag(matrix), matrix.sum(0), matrix.sum(1)

    def ratio(top, bottom):
        return [float(t / b) if b else None for t, b in zip(top, bottom)]

    precision, recall = ratio(tp, predicted), ratio(tp, support)
    f1 = ratio(2 * tp, predicted + support)
    rows = [[name, p, r, f, int(s)] for name, p, r, f, s in zip(names, precision, recall, f1, support)]
    has = support > 0
    weights = support[has] / support.sum() if has.any() else support[has]
    totals = []
    for label, combine in (("macro avg", np.mean), ("weighted avg", lambda v: float(np.sum(v * weights)))):
        columns = [np.array([v if v is not None else 0.0 for v, h in zip(values, has) if h])
                   for values in (precision, recall, f1)]
        totals.append([label, *(float(combine(c)) if len(c) else None for c in columns), int(support.sum())])
    return rows, totals


def one_vs_rest_curves(scores, labels, names) -> dict:
    """{class: (recall levels, precision, AP)} of each class with examples, its scores ranking
    every example (`RECALL_LEVELS`, COCO's interpolation)."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    curves = {}
    for index, name in enumerate(names):
        positive = labels == index
        count = int(positive.sum())
        if not count:
            continue
        order = np.argsort(-scores[:, index], kind="stable")
        hits = np.cumsum(positive[order])
        precision = hits / np.arange(1, len(order) + 1)
        recall = hits / count
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        at = np.searchsorted(recall, RECALL_LEVELS, side="left")
        levels = np.where(at < len(envelope), envelope[np.minimum(at, len(envelope) - 1)], 0.0)
        curves[name] = (RECALL_LEVELS, levels, float(levels.mean()))
    return curves


class ConfidentMistakes:
    """The `size` most confident mistakes seen so far (confidence: the predicted class's score),
    fed chunk by chunk: only their pictures are kept, never all of them."""

    def __init__(self, size: int = GALLERY):
        self.size, self.seen, self.wrong = size, 0, 0
        self.kept: list[tuple] = []  # (confidence, example index, true, predicted, true's score, picture)

    def add(self, scores, labels, pictures):
        """`pictures[i]`: uint8 (H, W, 3) or, for a clip, (T, H, W, 3) of example i of the chunk."""
        scores, labels = np.asarray(scores), np.asarray(labels).reshape(-1)
        predicted = scores.argmax(-1)
        confidence = scores[np.arange(len(scores)), predicted]
        wrong = np.flatnonzero(predicted != labels)
        self.wrong += len(wrong)
        floor = self.kept[-1][0] if len(self.kept) == self.size else -np.inf
        wrong = wrong[confidence[wrong] > floor]
        for i in wrong[np.argsort(-confidence[wrong], kind="stable")][:self.size]:
            self.kept.append((float(confidence[i]), self.seen + int(i), int(labels[i]), int(predicted[i]),
                              float(scores[i, labels[i]]), np.array(pictures[i])))
        self.kept = sorted(self.kept, key=lambda kept: (-kept[0], kept[1]))[:self.size]
        self.seen += len(labels)


def clip_picture(clip) -> np.ndarray:
    """A clip (T, H, W, 3) as one picture: its first, middle and last frames side by side."""
    frames = [clip[0], clip[len(clip) // 2], clip[-1]]
    gap = np.full((clip.shape[1], max(1, clip.shape[2] // 16), 3), 255, np.uint8)
    return np.concatenate([frames[0], gap, frames[1], gap, frames[2]], axis=1)


def report_classes(report, scores, labels, names, mistakes: ConfidentMistakes | None, what="examples",
                   clips_per_video: int = 1):
    """The table, and with a folder the confusion matrix, PR curves and gallery (`clips_per_video`
    consecutive examples are one video's clips: captions name the video and the clip)."""
    labels = np.asarray(labels, np.int64).reshape(-1)
    names = [str(name) for name in names]
    matrix = confusion_counts(labels, np.asarray(scores).argmax(-1), len(names))
    rows, totals = per_class_rows(matrix, names)
    report.table(f"per class ({len(labels):,} {what})", ["class", "precision", "recall", "F1", "support"],
                 rows, totals=totals, worst_by="F1")
    if report.folder is None:
        return
    save_confusion_matrix(report, matrix, names, what=what)
    save_pr_curves(report, one_vs_rest_curves(scores, labels, names),
                   title=f"precision-recall per class, one vs rest ({len(labels):,} {what})")
    kept = mistakes.kept if mistakes is not None else []
    pictures = [clip_picture(k[5]) if k[5].ndim == 4 else k[5] for k in kept]
    k = clips_per_video
    captions = [f"#{index if k == 1 else f'{index // k} clip {index % k + 1}/{k}'}: true {short_label(names[true], 18)} "
                f"({true_score:.2f})\npredicted {short_label(names[pred], 18)} ({score:.2f})"
                for score, index, true, pred, true_score, _ in kept]
    frames = "; frames first | middle | last" if kept and kept[0][5].ndim == 4 else ""
    wrong = mistakes.wrong if mistakes is not None else 0
    save_gallery(report, pictures, captions,
                 title=f"the most confident mistakes: {len(kept)} of {wrong:,} in {len(labels):,} {what}\n"
                       f"#index in the eval split: true class (its score), predicted class (its score){frames}")





def predict_with_mistakes(model, dataset, mistakes: ConfidentMistakes | None):
    """(scores, labels) of a batched (inputs, labels) dataset, as `predict_all`; with `mistakes`,
    each chunk's inputs (as uint8 pictures, made in tf.data) feed it on the way."""
    from zoo.tasks.base import predict_all, predict_chunks, with_pictures

    if mistakes is None:
        return predict_all(model, dataset)
    scores, labels = [], []
    for outputs, targets in predict_chunks(model, with_pictures(dataset)):
        chunk_labels = np.concatenate([y for y, _ in targets])
        mistakes.add(outputs, chunk_labels, np.concatenate([pictures for _, pictures in targets]))
        scores.append(outputs)
        labels.append(chunk_labels)
    return np.concatenate(scores), np.concatenate(labels)
