#!/bin/bash
# infprov's patched inferentia/scripts/setup.sh of python_backend r24.04 (Inf2 and Trn1, Neuron SDK v2).
#
# Installs, inside the Triton server container, what runs Neuron v2 models: the Neuron runtime library
# and collectives (apt), neuronx-cc and torch-neuronx (pip, into the image's python3). The image's own
# python backend stub serves (the v2 script builds none). Source it: `source setup-neuronx.sh -inf2 -p`.
#
# The upstream script (identical on r23.08 to r26.07) and the changes infprov makes to it:
#   - options: the same words (-p, -t, -inf2/--inf2-setup, -trn1/--trn1-setup, -inf1, -b, -v, -i,
#     --tensorflow-version), read one by one; upstream runs getopt (which cannot parse -inf2) and then
#     ignores its result, and reads `-b PATH` from the wrong position once another flag came first
#   - every step stops the script on failure (upstream runs on after a failed apt or pip and leaves a
#     half-built environment that fails later, at model load)
#   - what it downloads is pinned in pins-neuronx.env beside it (read line by line, never sourced):
#     the runtime and collectives versions (upstream: `=2.*`, whatever is newest, which must still match
#     the host's driver), neuronx-cc, torch-neuronx and torchvision (upstream: unpinned, so torchvision
#     may pull a torch that torch-neuronx does not support)
#   - the Neuron apt key goes to /etc/apt/keyrings and the source names it (signed-by) instead of
#     `apt-key add`: apt-key is deprecated on Ubuntu 22.04 and removed on 24.04 (and needs gnupg)
#   - no `pip install --upgrade pip` (an unpinned change to the image's pip that nothing here needs)
#   - no transformers-neuronx (not needed for a traced TorchScript model; its own pins pull other torch
#     and transformers versions into the resolve)
#   - -t (tensorflow-neuronx) and -inf1 are refused: infprov pins and tests the PyTorch path on Inf2 and
#     Trn1; Inf1 uses playbooks/files/setup.sh on python_backend r22.04
#   - the udev rules are copied only when the host's are mounted (upstream's cp fails without them)
# INFPROV_SETUP_VERSION: v2-1

_infprov_setup_v2() {
    local usage="usage: source setup.sh (-inf2 | -trn1) -p [-b PYTHON_BACKEND_PATH] [-v PYTHON_VERSION] [-i INFERENTIA_PATH]"
    local use_pt=0 use_tf=0 target=""
    while [ $# -gt 0 ]; do
        case "$1" in
            -h|--help) echo "$usage"; return 0 ;;
            -b|--python-backend-path|-v|--python-version|-i|--inferentia-path|--tensorflow-version)
                [ $# -ge 2 ] || { echo "setup.sh: $1 needs a value" >&2; return 2; }
                shift 2 ;;
            -p|--use-pytorch) use_pt=1; shift ;;
            -t|--use-tensorflow) use_tf=1; shift ;;
            -inf2|--inf2-setup) target=inf2; shift ;;
            -trn1|--trn1-setup) target=trn1; shift ;;
            -inf1|--inf1-setup) echo "setup.sh: this is the Neuron v2 (Inf2/Trn1) script; Inf1 uses python_backend r22.04's" >&2; return 2 ;;
            *) echo "setup.sh: unexpected option $1" >&2; echo "$usage" >&2; return 2 ;;
        esac
    done
    if [ -z "$target" ]; then echo "setup.sh: give -inf2 or -trn1" >&2; echo "$usage" >&2; return 2; fi
    if [ "$use_tf" -eq 1 ] || [ "$use_pt" -ne 1 ]; then
        echo "setup.sh: give -p (torch-neuronx); infprov pins no tensorflow-neuronx set" >&2
        echo "$usage" >&2
        return 2
    fi

    local pins here read_ok
    local pin_NEURON_APT_REPO="" pin_NEURON_APT_KEY_URL="" pin_NEURON_APT_TRUST="" pin_NEURON_RUNTIME_LIB_VERSION=""
    local pin_NEURON_COLLECTIVES_VERSION="" pin_NEURON_PIP_INDEX="" pin_NEURONX_CC_SPEC="" pin_TORCH_NEURONX_SPEC=""
    local pin_TORCHVISION_SPEC="" pin_TRANSFORMERS_SPEC=""
    here=$(dirname "${BASH_SOURCE[0]}")
    pins=$here/pins.env
    if [ ! -r "$here/pins.sh" ]; then echo "setup.sh: $here/pins.sh is missing (it reads the pins)" >&2; return 1; fi
    # shellcheck source=pins.sh
    source "$here/pins.sh"
    _infprov_read_pins "$pins" setup.sh NEURON_APT_REPO NEURON_APT_KEY_URL NEURON_APT_TRUST \
        NEURON_RUNTIME_LIB_VERSION NEURON_COLLECTIVES_VERSION NEURON_PIP_INDEX NEURONX_CC_SPEC TORCH_NEURONX_SPEC \
        TORCHVISION_SPEC TRANSFORMERS_SPEC
    read_ok=$?
    unset -f _infprov_read_pins
    [ "$read_ok" -eq 0 ] || return 1
    case $pin_NEURON_APT_TRUST in signed|trusted) ;; *) echo "setup.sh: NEURON_APT_TRUST is signed or trusted" >&2; return 1 ;; esac

    echo "setup.sh: Neuron v2 environment for $target (torch-neuronx)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q || return 1
    apt-get install -y -q --no-install-recommends zlib1g-dev wget libarchive-dev rapidjson-dev ca-certificates || return 1

    # the Neuron runtime (the driver is the host's: aws-neuronx-dkms on the DLAMI)
    local codename source_opts
    codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
    if [ "$pin_NEURON_APT_TRUST" = signed ]; then
        mkdir -p /etc/apt/keyrings || return 1
        wget -q "$pin_NEURON_APT_KEY_URL" -O /etc/apt/keyrings/neuron.asc || { echo "setup.sh: cannot download $pin_NEURON_APT_KEY_URL" >&2; return 1; }
        source_opts="[signed-by=/etc/apt/keyrings/neuron.asc]"
    else
        source_opts="[trusted=yes]"
    fi
    echo "deb $source_opts $pin_NEURON_APT_REPO $codename main" > /etc/apt/sources.list.d/neuron.list || return 1
    apt-get update -q || return 1
    apt-get install -y -q "aws-neuronx-collectives=$pin_NEURON_COLLECTIVES_VERSION" \
        "aws-neuronx-runtime-lib=$pin_NEURON_RUNTIME_LIB_VERSION" || return 1

    # the frameworks, from the Neuron package repository and PyPI
    pip config set global.extra-index-url "$pin_NEURON_PIP_INDEX" || return 1
    # transformers loads a Hugging Face model (infprov up --model) before torch_neuronx traces it
    pip install "$pin_NEURONX_CC_SPEC" "$pin_TORCH_NEURONX_SPEC" "$pin_TORCHVISION_SPEC" "$pin_TRANSFORMERS_SPEC" || return 1

    if [ -d /mylib/udev/rules.d ]; then
        cp /mylib/udev/rules.d/* /lib/udev/rules.d/ 2>/dev/null || true
    fi
    echo "setup.sh: Neuron v2 environment ready"
}

_infprov_setup_v2 "$@"
_infprov_status=$?
unset -f _infprov_setup_v2
# shellcheck disable=SC2317  # `exit` is reached only when the script was run, not sourced
return "$_infprov_status" 2>/dev/null || exit "$_infprov_status"
