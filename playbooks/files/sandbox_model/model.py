"""Sandbox stand-in for the Neuron-compiled ResNet-50: a cheap, deterministic classifier in numpy."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils  # provided by Triton's python backend

CLASSES = 1000
GRID = 4  # the 224x224 image is pooled over a GRID x GRID grid of 56x56 cells
SEED = 20220605  # fixed: every server and every run classifies the same image the same way


def _param(config: dict[str, Any], key: str, default: str) -> str:
    value = config.get("parameters", {}).get(key, {}).get("string_value", default)
    return str(value).strip()


def _truthy(text: str) -> bool:
    return text.lower() in ("1", "true", "yes", "on")


class TritonPythonModel:
    """Per-channel features over a grid, projected by a fixed seeded matrix, then softmax.

    Costs well under a millisecond per batch of 16 on one CPU core, so the server and the
    client, not the model, are what a benchmark of the sandbox exercises; its answers are
    real probabilities that a client can check (shape [batch, 1000], finite, rows summing to 1).
    """

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]
        self.neuron_cores = int(_param(config, "NEURON_CORES", "0") or 0)
        if not self.neuron_cores and _param(config, "NEURON_CORE_END_INDEX", ""):
            # the config gen_triton_model.py writes on Inf1 names the range the model spans
            start = int(_param(config, "NEURON_CORE_START_INDEX", "0") or 0)
            self.neuron_cores = int(_param(config, "NEURON_CORE_END_INDEX", "0")) - start + 1
        # Neuron v2 (upstream's --inf2 model.py) gives each model instance its share of the cores and
        # whole requests; the batch is then split over the cores of one instance only.
        instances = int(config.get("instance_group", [{}])[0].get("count", 1) or 1)
        self.neuron_cores = self.neuron_cores // max(1, instances) if self.neuron_cores else 0
        self.broken_shape = _truthy(_param(config, "BROKEN_SHAPE", "false"))
        self.broken_values = _truthy(_param(config, "BROKEN_VALUES", "false"))
        # A slow model on purpose (tests of client timeouts): every request waits this long first.
        self.delay_s = float(_param(config, "DELAY_MS", "0") or 0) / 1000.0
        rng = np.random.default_rng(SEED)
        features = GRID * GRID * 3 + 3
        self.weights = (rng.standard_normal((features, CLASSES)) / np.sqrt(features)).astype(np.float32)
        self.bias = (0.1 * rng.standard_normal(CLASSES)).astype(np.float32)

    def _classify(self, images: np.ndarray) -> np.ndarray:
        batch, cell = images.shape[0], 224 // GRID
        # Sum each cell's rows first (a contiguous reduction), then its columns: ~20x faster than
        # one mean over the two strided axes.
        rows = images.reshape(batch, GRID, cell, 224 * 3).sum(axis=2, dtype=np.float32)
        cells = rows.reshape(batch, GRID, GRID, cell, 3).sum(axis=3) / float(cell * cell)
        pooled = cells.reshape(batch, GRID * GRID * 3)
        channel = pooled.reshape(batch, GRID * GRID, 3).mean(axis=1)
        features = np.concatenate([pooled, channel], axis=1)
        features = (features - features.mean(axis=1, keepdims=True)) * 4.0
        logits = features @ self.weights + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        return probs.astype(np.float32)

    def _answer(self, request: Any) -> Any:
        images = pb_utils.get_input_tensor_by_name(request, self.input_name).as_numpy()
        if images.ndim == 4 and images.shape[1:] == (3, 224, 224):
            images = np.transpose(images, (0, 2, 3, 1))  # NCHW, as the traced torch model takes it
        elif images.ndim != 4 or images.shape[1:] != (224, 224, 3):
            raise pb_utils.TritonModelException(
                f"input must be [batch,224,224,3] or [batch,3,224,224], got {list(images.shape)}")
        batch = images.shape[0]
        if self.neuron_cores and batch < self.neuron_cores:
            # As on Inf1, where a batch is split across the NeuronCores.
            raise pb_utils.TritonModelException(
                f"batch {batch} is smaller than the {self.neuron_cores} NeuronCores this model spans"
            )
        probs = self._classify(np.asarray(images, dtype=np.float32))
        if self.broken_shape:
            probs = probs[:, : CLASSES - 1]
        if self.broken_values:
            probs[:, 0] = np.nan
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(self.output_name, probs)])

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        if self.delay_s > 0:
            time.sleep(self.delay_s)
        for request in requests:
            try:
                responses.append(self._answer(request))
            except pb_utils.TritonModelException as exc:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))))
        return responses

    def finalize(self) -> None:
        self.weights = np.zeros((0, CLASSES), dtype=np.float32)
