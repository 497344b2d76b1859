"""Compile a user's model for the host's Neuron generation (infprov up --model); runs in the server container.

The calls follow the Neuron documentation at the release infprov pins (sandbox/upstream/neuron-compile-apis.json):
- TorchScript on Inf1: torch_neuron.trace(model, example_inputs, dynamic_batch_size=True) at batch 1; upstream's
  r22.04 model.py wraps the result in torch.neuron.DataParallel, which splits each batch over the cores.
- TorchScript and Hugging Face models on Inf2/Trn1: torch_neuronx.trace(model, example_inputs) at the served
  batch (a traced graph has fixed shapes); a hub model is loaded with from_pretrained(..., torchscript=True)
  and traced with its tensors in the order its forward takes them, as the Neuron BERT inference tutorial does.
- SavedModel on Inf1: tensorflow.neuron.saved_model.compile(src, out, dynamic_batch_size=True).
Python 3.7 (Inf1's environment): no newer syntax.
"""

import argparse
import os
import shutil
import sys

DTYPES = {"BOOL": "bool", "UINT8": "uint8", "INT8": "int8", "INT16": "int16", "INT32": "int32",
          "INT64": "int64", "FP16": "float16", "FP32": "float32", "FP64": "float64"}


def tensor_specs(items):
    out = []
    for item in items or []:
        name, dtype, shape = item.split(":")
        out.append((name, dtype, [int(d) for d in shape.split("x")]))
    return out


def examples(torch, specs, batch):
    made = []
    for _name, dtype, shape in specs:
        kind = getattr(torch, DTYPES.get(dtype, "float32"))
        if dtype.startswith("FP"):
            made.append(torch.rand([batch] + shape).to(kind))
        else:
            made.append(torch.ones([batch] + shape, dtype=kind))
    return tuple(made)


def hub_model(args):
    import transformers

    source = args.src
    if args.kind == "hf":
        with open(os.path.join(args.src, "hf-id")) as fh:
            source = fh.read().strip()
    classes = {"text-classification": transformers.AutoModelForSequenceClassification,
               "feature-extraction": transformers.AutoModel,
               "image-classification": transformers.AutoModelForImageClassification}
    model = classes[args.task].from_pretrained(source, torchscript=True)
    return model.eval()


def main():
    p = argparse.ArgumentParser(description="compile a model for Neuron (infprov)")
    p.add_argument("--kind", required=True, choices=["torchscript", "savedmodel", "hub", "hf"])
    p.add_argument("--generation", required=True, choices=["neuron-v1", "neuron-v2"])
    p.add_argument("--src", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--task", default="")
    p.add_argument("--seq-len", type=int, default=0)
    p.add_argument("--input", action="append", default=[])
    args = p.parse_args()
    parent = os.path.dirname(args.out)
    if parent:
        os.makedirs(parent, exist_ok=True)
    if args.kind == "savedmodel":
        import tensorflow.neuron as tfn

        shutil.rmtree(args.out, ignore_errors=True)
        tfn.saved_model.compile(args.src, args.out, dynamic_batch_size=True)
        print("compiled the SavedModel for Inf1 into", args.out)
        return 0
    import torch

    specs = tensor_specs(args.input)
    model = torch.jit.load(args.src).eval() if args.kind == "torchscript" else hub_model(args)
    with torch.no_grad():
        if args.generation == "neuron-v1":
            import torch_neuron  # noqa: F401  (registers torch.neuron)

            traced = torch.neuron.trace(model, examples(torch, specs, 1), dynamic_batch_size=True)
        else:
            import torch_neuronx

            traced = torch_neuronx.trace(model, examples(torch, specs, args.batch))
    torch.jit.save(traced, args.out)
    print("compiled for", args.generation, "into", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
