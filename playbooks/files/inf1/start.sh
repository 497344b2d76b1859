#!/bin/bash
# The server container's command on every Neuron generation: build (first start) or reuse the Neuron
# environment, make the model repository if it is missing, then serve. Reads MODEL_NAME, NEURON_CORE_RANGE,
# MAX_BATCH_SIZE and NEURON_GENERATION (neuron-v1: Inf1, TF ResNet-50 split across the cores; neuron-v2:
# Inf2/Trn1, SETUP_TARGET -inf2 or -trn1, a traced torch ResNet-50 of MAX_BATCH_SIZE images per request,
# one model instance per core); NEURON_RT_VISIBLE_CORES (set by docker run) confines the runtime to the range.
# With MODEL_PLAN (infprov up --model: the user's own model), make_model.py makes the model from that plan
# instead of ResNet-50, and SETUP_FRAMEWORK (-t or -p) picks Inf1's framework for setup.sh.
set -eo pipefail
pb=${PYTHON_BACKEND_PATH:-/home/ubuntu/python_backend}
model=${MODEL_NAME:?MODEL_NAME is not set}
cores=${NEURON_CORE_RANGE:?NEURON_CORE_RANGE is not set}
max_batch=${MAX_BATCH_SIZE:?MAX_BATCH_SIZE is not set}
generation=${NEURON_GENERATION:-neuron-v1}
case $generation in
    neuron-v1) ;;
    neuron-v2)
        target=${SETUP_TARGET:?SETUP_TARGET is not set}
        case $target in -inf2|-trn1) ;; *) echo "start.sh: SETUP_TARGET must be -inf2 or -trn1, not $target" >&2; exit 2 ;; esac ;;
    *) echo "start.sh: NEURON_GENERATION must be neuron-v1 or neuron-v2, not $generation" >&2; exit 2 ;;
esac
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
    # env.sh keeps what setup.sh set or changed, and nothing of this start's own settings (docker run -e):
    # a later start from the committed image takes those from its own docker run.
    declare -A before=()
    while IFS= read -r name; do before[$name]=${!name}; done < <(compgen -e)
    # setup.sh's output also goes to a file on the host's python_backend mount (`infprov logs --setup`): the
    # container that ran it is replaced later (its `docker logs` go with it), the file stays. setup.sh must
    # be sourced (it sets the environment), so it is this shell's output that is copied, then restored.
    setup_log=$pb/infprov/setup.log
    echo "start.sh: setup.sh runs; its output is kept in $setup_log"
    exec 3>&1 4>&2
    exec > >(tee "$setup_log") 2>&1
    echo "start.sh: setup.sh for $generation, started $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    if [ "$generation" = neuron-v2 ]; then
        # shellcheck disable=SC1091
        source "$pb/inferentia/scripts/setup.sh" "$target" -p -b "$pb"
    elif [ "${SETUP_FRAMEWORK:--t}" = -p ]; then
        # shellcheck disable=SC1091
        source "$pb/inferentia/scripts/setup.sh" -p -b "$pb"
    else
        # shellcheck disable=SC1091
        source "$pb/inferentia/scripts/setup.sh" -t -b "$pb"
    fi
    echo "start.sh: setup.sh done $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    exec 1>&3 2>&4 3>&- 4>&-
    mkdir -p "$state"
    : > "$state/env.sh.part"
    while IFS= read -r name; do
        case $name in
            MODEL_NAME|NEURON_CORE_RANGE|NEURON_RT_VISIBLE_CORES|MAX_BATCH_SIZE|NEURON_GENERATION|SETUP_TARGET) continue ;;
            MODEL_PLAN|SETUP_FRAMEWORK) continue ;;
            PYTHON_BACKEND_PATH|INFPROV_*|HOSTNAME|PWD|OLDPWD|SHLVL|_) continue ;;
        esac
        if [ -z "${before[$name]+set}" ] || [ "${before[$name]}" != "${!name}" ]; then
            printf 'export %s=%q\n' "$name" "${!name}" >> "$state/env.sh.part"
        fi
    done < <(compgen -e)
    mv "$state/env.sh.part" "$state/env.sh"
fi

# The model is made again when what it is made from changed (INFPROV_MODEL_HASH: the start and compile
# scripts, the model's name, batch and cores; server.yml computes it): a new batch needs a new trace.
model_key=${INFPROV_MODEL_HASH:-}
if [ -n "$model_key" ] && [ -f "$pb/models/$model/config.pbtxt" ] &&
   [ "$(cat "$pb/infprov/model-key" 2>/dev/null)" != "$model_key" ]; then
    echo "start.sh: the model's settings or scripts changed since it was made: making it again"
    rm -rf "${pb:?}/models/$model" "$pb/infprov/rn50_neuron"
fi

if [ -n "${MODEL_PLAN:-}" ] && [ ! -f "$pb/models/$model/config.pbtxt" ]; then
    # the user's own model: unpack, compile (once per plan), gen_triton_model.py with the plan's flags
    python3 "$pb/infprov/make_model.py" --plan "$MODEL_PLAN" --python-backend "$pb"
fi

if [ -z "${MODEL_PLAN:-}" ] && [ "$generation" = neuron-v2 ] && [ ! -f "$pb/models/$model/config.pbtxt" ]; then
    # gen_triton_model.py --inf2 takes the compiled model's path relative to the model's folder (its
    # model.py joins it to the model repository path it is given); the traced file lives there.
    mkdir -p "$pb/models/$model"
    traced=$pb/models/$model/rn50_neuronx.pt
    if [ ! -f "$traced" ] && [ "$standin" = 1 ]; then
        python3 "$pb/infprov-standin/compile_neuronx.py" --out "$traced" --batch "$max_batch"
    elif [ ! -f "$traced" ]; then
        python3 "$pb/infprov/compile_rn50_neuronx.py" --out "$traced" --batch "$max_batch"
    fi
    first=${cores%%:*}
    last=${cores##*:}
    # One model instance per NeuronCore: upstream's --inf2 model.py gives instance i the cores
    # start+i*n..start+i*n+n-1 (NEURON_RT_VISIBLE_CORES) and sends it whole requests; the traced graph
    # has a fixed shape, so the input names the batch (max_batch_size 0: Triton checks the whole shape).
    python3 "$pb/inferentia/scripts/gen_triton_model.py" --inf2 --model_type pytorch \
        --compiled_model rn50_neuronx.pt \
        --triton_input "INPUT__0,FP32,${max_batch}x3x224x224" --triton_output "OUTPUT__0,FP32,${max_batch}x1000" \
        --neuron_core_range "$cores" --triton_model_instance_count $((last - first + 1)) \
        --triton_model_dir "$pb/models/$model"
fi

if [ -z "${MODEL_PLAN:-}" ] && [ ! -f "$pb/models/$model/config.pbtxt" ]; then
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

# Triton serves every folder of the repository: only this model's stays (a model served before goes).
for folder in "$pb"/models/*/; do
    [ -d "$folder" ] || continue
    [ "$(basename "$folder")" = "$model" ] || rm -rf "$folder"
done
if [ -z "${MODEL_PLAN:-}" ]; then rm -rf "$pb/infprov/models"; fi
if [ -n "$model_key" ]; then echo "$model_key" > "$pb/infprov/model-key"; fi
exec tritonserver --model-repository "$pb/models"
