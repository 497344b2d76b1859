#!/bin/bash
# infprov's patched inferentia/scripts/setup.sh for python_backend r22.04 (Inf1, Neuron SDK v1).
#
# Builds, inside the Triton server container, the Python environment that runs Neuron models:
# a conda env, the python backend stub built against r22.04, and tensorflow-neuron or torch-neuron.
# Source it (`source setup.sh -t`): it activates the env and extends LD_LIBRARY_PATH in the caller.
#
# Changes against the upstream r22.04 script:
#   - build dependencies installed first, without prompts (apt-get -y, DEBIAN_FRONTEND), cmake upgraded
#   - the stub's cmake call pins TRITON_BACKEND/COMMON/CORE_REPO_TAG to r22.04 (their default, main,
#     no longer builds against r22.04)
#   - options are parsed from getopt's normalised output, so combined flags such as -tp are read
#   - --tensorflow-version is matched under its own name and takes effect
#   - with -b, the stub is copied from that python_backend path, not from the inferentia path
#   - TF1 gets protobuf<4 (protobuf 4 breaks it: "Descriptors cannot not be created directly")
# INFPROV_SETUP_VERSION: 1

_infprov_setup() {
    local usage="usage: source setup.sh (-t | -p) [-b PYTHON_BACKEND_PATH] [-v PYTHON_VERSION] [-i INFERENTIA_PATH] [--tensorflow-version 1|2]"
    local opts
    if ! opts=$(getopt -o hb:v:i:tp \
        --long help,python-backend-path:,python-version:,inferentia-path:,use-tensorflow,use-pytorch,tensorflow-version: \
        -n setup.sh -- "$@"); then
        echo "$usage" >&2
        return 2
    fi
    eval set -- "$opts"

    local inferentia_path=${TRITON_PATH:-/home/ubuntu}
    local backend_path=/home/ubuntu/python_backend
    local python_version=3.7
    local use_tf=0 use_pt=0 tf_version=1
    while true; do
        case "$1" in
            -h|--help) echo "$usage"; return 0 ;;
            -b|--python-backend-path) backend_path=$2; shift 2 ;;
            -v|--python-version) python_version=$2; shift 2 ;;
            -i|--inferentia-path) inferentia_path=$2; shift 2 ;;
            -t|--use-tensorflow) use_tf=1; shift ;;
            -p|--use-pytorch) use_pt=1; shift ;;
            --tensorflow-version) tf_version=$2; shift 2 ;;
            --) shift; break ;;
            *) echo "setup.sh: unexpected option $1" >&2; return 2 ;;
        esac
    done
    if [ $((use_tf + use_pt)) -ne 1 ]; then
        echo "setup.sh: give exactly one of -t (tensorflow) or -p (pytorch)" >&2
        echo "$usage" >&2
        return 2
    fi
    if [ "$use_tf" -eq 1 ] && [ "$tf_version" != 1 ] && [ "$tf_version" != 2 ]; then
        echo "setup.sh: --tensorflow-version must be 1 or 2, not $tf_version" >&2
        return 2
    fi

    # (1) build dependencies, non-interactive
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q || return 1
    apt-get install -y -q --no-install-recommends \
        rapidjson-dev zlib1g-dev libarchive-dev wget ca-certificates git build-essential || return 1
    pip3 install --upgrade cmake || return 1

    # conda, with a python of the requested version
    local conda_dir=$inferentia_path/miniconda
    if [ ! -x "$conda_dir/bin/conda" ]; then
        wget -q https://repo.anaconda.com/miniconda/Miniconda3-latest-Linux-x86_64.sh -O /tmp/miniconda.sh || return 1
        bash /tmp/miniconda.sh -b -p "$conda_dir" || return 1
        rm -f /tmp/miniconda.sh
    fi
    # shellcheck disable=SC1091
    source "$conda_dir/etc/profile.d/conda.sh" || return 1
    if ! conda env list | grep -q '^test_conda_env '; then
        conda create -y -q -n test_conda_env "python=$python_version" || return 1
    fi
    conda activate test_conda_env || return 1

    # (2) the python backend stub, built against r22.04's common/core/backend repositories
    local build=$backend_path/build
    mkdir -p "$build" || return 1
    (
        cd "$build" &&
        cmake -DTRITON_ENABLE_GPU=ON -DCMAKE_INSTALL_PREFIX:PATH="$build/install" \
            -D TRITON_BACKEND_REPO_TAG=r22.04 \
            -D TRITON_COMMON_REPO_TAG=r22.04 \
            -D TRITON_CORE_REPO_TAG=r22.04 \
            .. &&
        make -j"$(nproc)" triton-python-backend-stub
    ) || return 1

    # Neuron frameworks from the Neuron package repository
    pip config set global.extra-index-url https://pip.repos.neuron.amazonaws.com || return 1
    if [ "$use_tf" -eq 1 ]; then
        if [ "$tf_version" = 1 ]; then
            pip install "tensorflow-neuron==1.15.5.*" neuron-cc "protobuf<4" || return 1
        else
            pip install "tensorflow-neuron[cc]" "protobuf<4" || return 1
        fi
    else
        pip install torch-neuron "neuron-cc[tensorflow]" "protobuf<4" torchvision || return 1
    fi

    # the stub goes where Triton looks for the python backend
    cp "$build/triton_python_backend_stub" /opt/tritonserver/backends/python/ || return 1
    if [ -d /mylib/udev/rules.d ]; then
        cp /mylib/udev/rules.d/* /lib/udev/rules.d/ 2>/dev/null || true
    fi
    export LD_LIBRARY_PATH=$CONDA_PREFIX/lib:${LD_LIBRARY_PATH:-}
    echo "setup.sh: environment test_conda_env ready"
}

_infprov_setup "$@"
_infprov_status=$?
unset -f _infprov_setup
# shellcheck disable=SC2317  # `exit` is reached only when the script was run, not sourced
return "$_infprov_status" 2>/dev/null || exit "$_infprov_status"
