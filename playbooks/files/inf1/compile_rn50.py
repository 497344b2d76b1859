"""Compile Keras ResNet-50 (ImageNet, channels last) for Inferentia with tensorflow-neuron 1.15.

Saved with the signature the Triton model expects: input `input` [N,224,224,3] FP32, output `output` [N,1000].
"""

import argparse
import shutil
import tempfile

import tensorflow as tf  # tensorflow-neuron 1.15.x, from setup.sh's environment
import tensorflow.neuron as tfn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="where the Neuron-compiled SavedModel goes")
    args = parser.parse_args()
    tf.keras.backend.set_learning_phase(0)
    tf.keras.backend.set_image_data_format("channels_last")
    model = tf.keras.applications.ResNet50(weights="imagenet")
    plain = tempfile.mkdtemp(prefix="rn50-")
    shutil.rmtree(plain)
    tf.saved_model.simple_save(
        session=tf.keras.backend.get_session(),
        export_dir=plain,
        inputs={"input": model.inputs[0]},
        outputs={"output": model.outputs[0]},
    )
    shutil.rmtree(args.out, ignore_errors=True)
    # Compiled for batch 1; dynamic_batch_size=True lets the compiled model take any batch and run it as
    # batch-1 pieces (model.py hands each NeuronCore its slice of a request: 4 images of 64 on 16 cores).
    # tensorflow-neuron turns this on by itself only for a few models, so it is asked for here, as the Neuron
    # docs' "Neuron Batching" page says (general/arch/neuron-features/neuroncore-batching.rst in
    # https://github.com/aws-neuron/aws-neuron-sdk, commit 7a4eff86); the compilation API page,
    # https://awsdocs-neuron.readthedocs-hosted.com/en/latest/frameworks/tensorflow/tensorflow-neuron/api-compilation-python-api.html,
    # does not list the argument.
    tfn.saved_model.compile(plain, args.out, dynamic_batch_size=True)
    shutil.rmtree(plain, ignore_errors=True)
    print(f"compiled ResNet-50 for Neuron into {args.out}")


if __name__ == "__main__":
    main()
