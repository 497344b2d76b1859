#!/bin/bash
# infprov's patched inferentia/scripts/setup.sh for python_backend r22.04 (Inf1, Neuron SDK v1).
#
# Builds, inside the Triton server container, the Python environment that runs Neuron models:
# a conda env, the python backend stub built against r22.04, and tensorflow-neuron or torch-neuron.
# Source it (`source setup.sh -t`): it activates the env and extends LD_LIBRARY_PATH in the caller.
#
# Changes against the upstream r22.04 script:
#   - build dependencies installed first, without prompts (apt-get -y, DEBIAN_FRONTEND), cmake upgraded;
#     apt leaves out the image's CUDA repository, whose signing key in the 22.04 image is stale
#   - the stub's cmake call pins TRITON_BACKEND/COMMON/CORE_REPO_TAG to r22.04 (their default, main,
#     no longer builds against r22.04)
#   - options are parsed from getopt's normalised output, so combined flags such as -tp are read
#   - --tensorflow-version is matched under its own name and takes effect
#   - with -b, the stub is copied from that python_backend path, not from the inferentia path
#   - TF1 gets protobuf<4 (protobuf 4 breaks it: "Descriptors cannot not be created directly")
#   - what it downloads is pinned in pins.env beside it (read line by line, never sourced):
#     a dated Miniconda installer checked against its SHA-256 (Miniconda3-latest's conda refuses
#     `conda create` without a terminal until channel terms are accepted; those are accepted too),
#     cmake<4 (CMake 4 stops on pybind11 v2.6 and dlpack v0.5), Boost 1.76 from archives.boost.io
#     (CMakeLists.txt's boostorg.jfrog.io no longer serves it; same archive, same SHA-256), and exact
#     tensorflow-neuron / neuron-cc versions
# INFPROV_SETUP_VERSION: 3

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

    # the pins: KEY=VALUE lines beside this script, read as data (values hold `<`, `>`); local, as
    # this script is sourced into the caller's shell
    local pins here read_ok
    local pin_MINICONDA_URL="" pin_MINICONDA_SHA256="" pin_CMAKE_PIP_SPEC="" pin_BOOST_DEAD_URL="" pin_BOOST_URL=""
    local pin_TRITON_REPO_TAG="" pin_NEURON_PIP_INDEX="" pin_TENSORFLOW_NEURON_SPEC="" pin_NEURON_CC_SPEC=""
    local pin_TORCH_NEURON_SPEC="" pin_PROTOBUF_SPEC="" pin_TORCHVISION_V1_SPEC=""
    here=$(dirname "${BASH_SOURCE[0]}")
    pins=$here/pins.env
    if [ ! -r "$here/pins.sh" ]; then echo "setup.sh: $here/pins.sh is missing (it reads the pins)" >&2; return 1; fi
    # shellcheck source=pins.sh
    source "$here/pins.sh"
    _infprov_read_pins "$pins" setup.sh MINICONDA_URL MINICONDA_SHA256 CMAKE_PIP_SPEC BOOST_DEAD_URL BOOST_URL \
        TRITON_REPO_TAG NEURON_PIP_INDEX TENSORFLOW_NEURON_SPEC NEURON_CC_SPEC TORCH_NEURON_SPEC PROTOBUF_SPEC \
        TORCHVISION_V1_SPEC
    read_ok=$?
    unset -f _infprov_read_pins
    [ "$read_ok" -eq 0 ] || return 1

    # (1) build dependencies, non-interactive.
    # The 22.04 image carries NVIDIA's CUDA apt repository (server r22.04's build.py adds it for DCGM) trusted
    # with the key NVIDIA rotated out on 2022-04-27, so `apt-get update` fails on it (NO_PUBKEY
    # A4B469963BF863CC). Nothing here comes from it: apt runs on the image's other sources only (the image's
    # own files stay as they are).
    export DEBIAN_FRONTEND=noninteractive
    local apt_opts=() apt_dir="" cuda=developer.download.nvidia.com/compute/cuda/repos/ src
    if grep -qs "$cuda" /etc/apt/sources.list /etc/apt/sources.list.d/*; then
        apt_dir=$(mktemp -d) || return 1
        mkdir "$apt_dir/parts" || return 1
        grep -v "$cuda" /etc/apt/sources.list > "$apt_dir/sources.list" 2>/dev/null || true
        for src in /etc/apt/sources.list.d/*; do
            if [ -f "$src" ] && ! grep -qs "$cuda" "$src"; then cp "$src" "$apt_dir/parts/" || return 1; fi
        done
        apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/parts")
        echo "setup.sh: apt leaves out NVIDIA's CUDA repository (its key in this image was rotated out on 2022-04-27; nothing here installs from it)"
    fi
    apt-get "${apt_opts[@]}" update -q || return 1
    apt-get "${apt_opts[@]}" install -y -q --no-install-recommends \
        rapidjson-dev zlib1g-dev libarchive-dev wget ca-certificates git build-essential || return 1
    if [ -n "$apt_dir" ]; then rm -rf "$apt_dir"; fi
    pip3 install --upgrade "$pin_CMAKE_PIP_SPEC" || return 1

    # conda, with a python of the requested version, from the pinned installer
    local conda_dir=$inferentia_path/miniconda
    if [ ! -x "$conda_dir/bin/conda" ]; then
        local installer=/tmp/infprov-miniconda.sh
        wget -q "$pin_MINICONDA_URL" -O "$installer" || { echo "setup.sh: cannot download $pin_MINICONDA_URL" >&2; return 1; }
        if ! echo "$pin_MINICONDA_SHA256  $installer" | sha256sum -c --status -; then
            echo "setup.sh: $pin_MINICONDA_URL does not have the pinned SHA-256 $pin_MINICONDA_SHA256" >&2
            rm -f "$installer"
            return 1
        fi
        bash "$installer" -b -p "$conda_dir" || return 1
        rm -f "$installer"
    fi
    # shellcheck disable=SC1091
    source "$conda_dir/etc/profile.d/conda.sh" || return 1
    # conda releases from mid-2025 on ask to accept the default channels' terms before `create`,
    # and refuse without a terminal: accept them here (older condas know neither and ignore both)
    export CONDA_PLUGINS_AUTO_ACCEPT_TOS=yes
    if conda tos --help >/dev/null 2>&1; then
        conda tos accept --override-channels --channel https://repo.anaconda.com/pkgs/main >/dev/null 2>&1 || true
        conda tos accept --override-channels --channel https://repo.anaconda.com/pkgs/r >/dev/null 2>&1 || true
    fi
    if ! conda env list | grep -q '^test_conda_env '; then
        conda create -y -q -n test_conda_env "python=$python_version" || return 1
    fi
    conda activate test_conda_env || return 1

    # (2) the python backend stub, built against r22.04's common/core/backend repositories;
    # Boost from where it is still served (idempotent: after the first run there is nothing to replace)
    sed -i "s#$pin_BOOST_DEAD_URL#$pin_BOOST_URL#" "$backend_path/CMakeLists.txt" || return 1
    local build=$backend_path/build
    mkdir -p "$build" || return 1
    (
        cd "$build" &&
        cmake -DTRITON_ENABLE_GPU=ON -DCMAKE_INSTALL_PREFIX:PATH="$build/install" \
            -D TRITON_BACKEND_REPO_TAG="$pin_TRITON_REPO_TAG" \
            -D TRITON_COMMON_REPO_TAG="$pin_TRITON_REPO_TAG" \
            -D TRITON_CORE_REPO_TAG="$pin_TRITON_REPO_TAG" \
            .. &&
        make -j"$(nproc)" triton-python-backend-stub
    ) || return 1

    # Neuron frameworks from the Neuron package repository
    pip config set global.extra-index-url "$pin_NEURON_PIP_INDEX" || return 1
    if [ "$use_tf" -eq 1 ]; then
        if [ "$tf_version" = 1 ]; then
            pip install "$pin_TENSORFLOW_NEURON_SPEC" "$pin_NEURON_CC_SPEC" "$pin_PROTOBUF_SPEC" || return 1
        else
            pip install "tensorflow-neuron[cc]" "$pin_PROTOBUF_SPEC" || return 1
        fi
    else
        # (upstream: neuron-cc[tensorflow] and torchvision unpinned, which resolve to releases without Python 3.7
        # wheels or with another torch than torch-neuron's; pinned here to the release's pair)
        pip install "$pin_TORCH_NEURON_SPEC" "neuron-cc[tensorflow]${pin_NEURON_CC_SPEC#neuron-cc}" "$pin_PROTOBUF_SPEC" \
            "$pin_TORCHVISION_V1_SPEC" || return 1
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
