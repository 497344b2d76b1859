# shellcheck shell=bash
# infprov: the pins reader that both setup scripts source (setup.sh on Inf1, setup-neuronx.sh on Inf2/Trn1);
# server.yml puts it beside them. pins.env holds KEY=VALUE lines, read as data and never sourced (values hold
# `<` and `>`).
# _infprov_read_pins FILE WHO KEY...: sets pin_KEY for each KEY from FILE. The caller declares each pin_KEY
# local (the setup scripts are sourced into the caller's shell), and bash's dynamic scope fills them. A missing
# file, a bad line or a missing KEY is one line on stderr, naming WHO, and status 1.
_infprov_read_pins() {
    local file=$1 who=$2 key value name wanted
    shift 2
    wanted=" $* "
    if [ ! -r "$file" ]; then
        echo "$who: $file is missing (it lists the pinned downloads)" >&2
        return 1
    fi
    while IFS='=' read -r key value; do
        case $key in ''|'#'*) continue ;; esac
        case $key in *[!A-Z0-9_]*) echo "$who: bad line in $file: $key" >&2; return 1 ;; esac
        case $wanted in *" $key "*) printf -v "pin_$key" '%s' "$value" ;; esac
    done < "$file"
    for key in "$@"; do
        name=pin_$key
        if [ -z "${!name}" ]; then echo "$who: $file has no $key" >&2; return 1; fi
    done
}
