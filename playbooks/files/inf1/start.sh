#!/bin/bash
# The server container's command on Inf1: build (first start) or reuse the Neuron environment,
# make the model repository if it is missing, then serve. Reads MODEL_NAME, NEURON_CORE_RANGE and
# MAX_BATCH_SIZE; NEURON_RT_VISIBLE_CORES (set by docker run) confines the Neuron runtime to the range.
set -eo pipefail
pb=${PYTHON_BACKEND_PATH:-/home/ubuntu/python_backend}
model=${MODEL_NAME:?MODEL_NAME is not set}
cores=${NEURON_CORE_RANGE:?NEURON_CORE_RANGE is not set}
max_batch=${MAX_BATCH_SIZE:?MAX_BATCH_SIZE is not set}
state=/opt/infprov
# The sandbox (INFPROV_NEURON_STANDIN=1) replaces only the Neuron layer: the compile comes from its
# python_backend stand-in. setup.sh runs in both profiles; in the sandbox its pins name the stand-in
# download server. Everything else runs as on Inf1.
standin=${INFPROV_NEURON_STANDIN:-0}

if [ -f "$state/env.sh" ]; then
    # an image committed after an earlier start already holds the environment
    echo "start.sh: the environment from the committed image ($state/env.sh)"
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
    if [ ! -f "$compiled/saved_model.pb" ] && [ "$standin" = 1 ]; then
        python3 "$pb/infprov-standin/compile.py" --out "$compiled"
    elif [ ! -f "$compiled/saved_model.pb" ]; then
        python3 "$pb/infprov/compile_rn50.py" --out "$compiled"
    fi
    # Batching: the server takes batches of up to max_batch images (dims without the batch axis, as
    # Triton wants when max_batch_size > 0), and the generated model.py splits each batch across
    # the cores' predictors. gen_triton_model.py's default (max_batch_size 0, -1x224x224x3) makes a
    # model that perf_analyzer refuses to send -b 16 to.
    python3 "$pb/inferentia/scripts/gen_triton_model.py" --model_type tensorflow \
        --compiled_model "$compiled" \
        --max_batch_size "$max_batch" \
        --triton_input input,FP32,224x224x3 --triton_output output,FP32,1000 \
        --neuron_core_range "$cores" --triton_model_dir "$pb/models/$model"
fi

exec tritonserver --model-repository "$pb/models"
