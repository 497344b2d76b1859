#!/bin/bash
# The server container's command on Inf1: build (first start) or reuse the Neuron environment,
# make the model repository if it is missing, then serve. Reads MODEL_NAME and NEURON_CORE_RANGE.
set -eo pipefail
pb=${PYTHON_BACKEND_PATH:-/home/ubuntu/python_backend}
model=${MODEL_NAME:?MODEL_NAME is not set}
cores=${NEURON_CORE_RANGE:?NEURON_CORE_RANGE is not set}
state=/opt/infprov

if [ -f "$state/env.sh" ]; then
    # an image committed after an earlier start already holds the environment
    # shellcheck disable=SC1091
    source "$state/env.sh"
else
    # shellcheck disable=SC1091
    source "$pb/inferentia/scripts/setup.sh" -t -b "$pb"
    mkdir -p "$state"
    export -p > "$state/env.sh"
fi

if [ ! -f "$pb/models/$model/config.pbtxt" ]; then
    compiled=$pb/infprov/rn50_neuron
    if [ ! -f "$compiled/saved_model.pb" ]; then
        python3 "$pb/infprov/compile_rn50.py" --out "$compiled"
    fi
    python3 "$pb/inferentia/scripts/gen_triton_model.py" --model_type tensorflow \
        --compiled_model "$compiled" \
        --triton_input input,FP32,-1x224x224x3 --triton_output output,FP32,-1x1000 \
        --neuron_core_range "$cores" --triton_model_dir "$pb/models/$model"
fi

exec tritonserver --model-repository "$pb/models"
