"""Sandbox stand-in for python_backend's Neuron model.py of a user's model (infprov up --model).

Serves the tensors the generated config declares: outputs of the declared shapes and data types, computed
from the inputs (a deterministic function of each item), taking time that grows with the input's size.
Triton itself refuses a request whose shape or data type differs from the config before it reaches here.
Like upstream's torch model.py (gen_triton_model.py r22.04/r24.04, _validate_and_get_index), it refuses
tensor names that are not NAME__INDEX for a torch model (its compiled artifact is a file); upstream's TensorFlow
model.py feeds a SavedModel's predictor by the config's names as they are (its compiled artifact is a SavedModel
folder), so those are taken as they are. It loads nothing but checks the compiled artifact is there.
"""

import json
import os
import time

import numpy as np
import triton_python_backend_utils as pb_utils

# The stand-in's cost per input element: the time a request takes grows with what it carries.
NS_PER_ELEMENT = 40


def _index(name):
    parts = name.split("__")
    if len(parts) != 2 or not parts[1].isnumeric():
        raise pb_utils.TritonModelException(
            f"tensor names are expected to be in format <name>__<index>, got {name}")
    return int(parts[1])


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.max_batch = int(config.get("max_batch_size", 0) or 0)
        params = config.get("parameters", {})
        compiled = params.get("COMPILED_MODEL", {}).get("string_value", "")
        if compiled and not os.path.isabs(compiled):
            compiled = os.path.join(args["model_repository"], compiled)
        if not compiled or not os.path.exists(compiled):
            raise pb_utils.TritonModelException(f"compiled model {compiled} not found")
        if os.path.isdir(compiled):  # a compiled SavedModel (model_type tensorflow): names as the signature's keys
            self.inputs, self.outputs = list(config["input"]), list(config["output"])
        else:  # a traced torch model: tensors passed by their __INDEX
            self.inputs = sorted(config["input"], key=lambda t: _index(t["name"]))
            self.outputs = sorted(config["output"], key=lambda t: _index(t["name"]))

    def _answer(self, request):
        arrays = [pb_utils.get_input_tensor_by_name(request, t["name"]).as_numpy() for t in self.inputs]
        started = time.monotonic()
        elements = sum(int(a.size) for a in arrays)
        batch = int(arrays[0].shape[0]) if arrays and arrays[0].ndim else 1
        # one feature per item: the mean of all its input values (a pass over every element)
        feature = np.zeros(batch, dtype=np.float64)
        for a in arrays:
            feature += a.reshape(batch, -1).astype(np.float64).mean(axis=1)
        outputs = []
        for t in self.outputs:
            dims = [int(d) for d in t["dims"]]
            shape = [batch] + dims if self.max_batch > 0 else dims
            per_item = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            ramp = np.arange(per_item, dtype=np.float64) / max(per_item, 1)
            values = np.tanh(feature[:, None] * 0.01 + ramp[None, :]).reshape(shape)
            dtype = pb_utils.triton_string_to_numpy(t["data_type"])
            if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
                values = np.round(values * 100)
            outputs.append(pb_utils.Tensor(t["name"], values.astype(dtype)))
        rest = elements * NS_PER_ELEMENT / 1e9 - (time.monotonic() - started)
        if rest > 0:
            time.sleep(rest)
        return pb_utils.InferenceResponse(output_tensors=outputs)

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                responses.append(self._answer(request))
            except Exception as exc:  # one bad request never takes the others down
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))))
        return responses

    def finalize(self):
        pass
