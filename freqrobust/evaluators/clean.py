"""Clean test accuracy: top-1 accuracy (%) and mean cross-entropy on every example of the test
split, of the reported function (EMA weights, test-time flip)."""
from __future__ import annotations

from typing import Callable, Dict

import numpy as np

from freqrobust.evaluators import base


def clean_accuracy(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray,
                   labels: np.ndarray) -> Dict[str, float]:
  """Accuracy (%) and mean CE of `predict` (float32 [0, 1] -> logits, batching itself) on a uint8
  test set, every example."""
  if len(images) == 0:
    raise ValueError("Cannot evaluate on an empty test set.")
  logits = np.asarray(predict(np.asarray(images, np.float32) / 255.0), np.float64)
  labels = np.asarray(labels)
  shifted = logits - logits.max(-1, keepdims=True)
  log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
  loss = -float(np.mean(np.take_along_axis(log_probs, labels[:, None], 1)))
  return {"accuracy": 100.0 * float(np.mean(logits.argmax(-1) == labels)), "loss": loss,
          "examples": int(len(labels))}


class Clean(base.Evaluator):
  type = "clean"
  results_key = "clean"
  columns = (base.Column("accuracy", "Acc. (%)", "top-1 accuracy on every test example"),
             base.Column("loss", "test CE", "mean cross-entropy on every test example",
                         higher_is_better=False))

  def run(self, context: base.Context) -> Dict[str, float]:
    return clean_accuracy(context.model.predict, *context.test_set())
