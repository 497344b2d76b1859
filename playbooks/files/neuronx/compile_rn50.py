"""Compile torchvision's ResNet-50 (ImageNet weights) for NeuronCore-v2 with torch_neuronx.trace.

The traced TorchScript takes one tensor [BATCH,3,224,224] FP32 (NCHW, as torch models do) and returns
[BATCH,1000]; a traced Neuron graph has fixed shapes, so the served config names that exact shape
(gen_triton_model.py with max_batch_size 0) and Triton refuses any other before it reaches the model.
"""

import argparse

import torch
import torch_neuronx  # torch-neuronx, from setup.sh -inf2 -p
from torchvision import models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="where the traced TorchScript file goes (.pt)")
    parser.add_argument("--batch", type=int, required=True, help="images per request, fixed at trace time")
    args = parser.parse_args()
    model = models.resnet50(weights=models.ResNet50_Weights.IMAGENET1K_V1).eval()
    example = torch.rand(args.batch, 3, 224, 224)
    with torch.no_grad():
        traced = torch_neuronx.trace(model, example)
    torch.jit.save(traced, args.out)
    print(f"compiled ResNet-50 for NeuronCore-v2 at batch {args.batch} into {args.out}")


if __name__ == "__main__":
    main()
