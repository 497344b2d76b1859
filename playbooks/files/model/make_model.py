"""Make the Triton model of a user's model (infprov up --model) from its plan; runs in the server container.

Unpacks the uploaded model (content-addressed: <key>.upload), compiles it once per plan (compile_model.py; on
the sandbox, INFPROV_NEURON_STANDIN=1, a stand-in that checks the artifact and keeps it), runs python_backend's
own gen_triton_model.py with the plan's flags, and removes the models and uploads of earlier plans.
Python 3.7 (Inf1's environment): no newer syntax.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))


def fail(message):
    print("make_model.py: " + message, file=sys.stderr)
    sys.exit(1)


def unpack(plan):
    src = plan["source_dir"]
    if os.path.isdir(src):
        return
    part = src + ".part"
    shutil.rmtree(part, ignore_errors=True)
    os.makedirs(part)
    kind = plan["kind"]
    if kind == "torchscript":
        shutil.copyfile(plan["upload"], os.path.join(part, "model.pt"))
    elif kind == "hf":
        with open(plan["upload"]) as fh:
            ident = json.load(fh)["hf"]
        with open(os.path.join(part, "hf-id"), "w") as fh:
            fh.write(ident + "\n")
    else:
        with tarfile.open(plan["upload"]) as tar:
            for member in tar.getmembers():
                # the tar is infprov's own (plain files, relative names); anything else is refused
                name = member.name
                if not member.isfile() or name.startswith("/") or ".." in name.split("/"):
                    fail("the uploaded archive holds an unexpected entry: " + repr(name))
            tar.extractall(part)
    os.rename(part, src)


def standin_check(plan, src):
    """What the sandbox can check of the artifact without a Neuron compiler (the same checks as infprov's
    local ones): a TorchScript archive, a SavedModel, a hub folder."""
    kind = plan["kind"]
    if kind == "torchscript":
        try:
            with zipfile.ZipFile(src) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            fail("sandbox stand-in compile: not a TorchScript archive: " + str(exc))
        tops = set(n.split("/", 1)[0] for n in names)
        top = tops.pop() if len(tops) == 1 else ""
        if not top or top + "/data.pkl" not in names or top + "/constants.pkl" not in names or \
                not any(n.startswith(top + "/code/") for n in names):
            fail("sandbox stand-in compile: not a TorchScript archive (data.pkl, constants.pkl, code/)")
    elif kind == "savedmodel":
        if not os.path.isfile(os.path.join(src, "saved_model.pb")):
            fail("sandbox stand-in compile: no saved_model.pb")
    elif kind == "hub":
        if not os.path.isfile(os.path.join(src, "config.json")):
            fail("sandbox stand-in compile: no config.json")
    else:
        fail("the sandbox has no internet: a hf: model cannot be downloaded there (use a local hub folder)")


def take_token(plan):
    """The Hugging Face token infprov up copied beside the uploads (hub-token, 0600), read once and removed at
    once, whatever follows: it is never printed and never written anywhere else."""
    path = os.path.join(os.path.dirname(plan["upload"]), "hub-token")
    try:
        with open(path) as fh:
            token = fh.read().strip()
    except OSError:
        return ""
    finally:
        if os.path.lexists(path):
            os.remove(path)
    return token


def compile_env(token):
    """The compile's environment: with a token, in both variables huggingface_hub reads (every release reads
    HUGGING_FACE_HUB_TOKEN; from 0.19.0 on HF_TOKEN first; sandbox/upstream/huggingface-transformers-pin.json)."""
    env = dict(os.environ)
    if token:
        env["HF_TOKEN"] = token
        env["HUGGING_FACE_HUB_TOKEN"] = token
    return env


def compile_model(plan, token=""):
    out = plan["compiled"]
    if os.path.exists(out):
        print("make_model.py: compiled already: " + out)
        return
    src = plan["compile_args"][plan["compile_args"].index("--src") + 1]
    parent = os.path.dirname(out)
    if os.environ.get("INFPROV_NEURON_STANDIN") == "1":
        standin_check(plan, src)
        os.makedirs(parent, exist_ok=True)
        # the stand-in keeps the artifact as it is: the stand-in model serves the declared tensors
        if os.path.isdir(src):
            shutil.copytree(src, out + ".part")
        else:
            shutil.copyfile(src, out + ".part")
        os.rename(out + ".part", out)
        print("sandbox stand-in compile: checked " + src + " and kept it as " + out)
        return
    args = [sys.executable, os.path.join(HERE, "compile_model.py")] + plan["compile_args"]
    print("make_model.py: " + " ".join(args))
    code = subprocess.call(args, env=compile_env(token))
    if code != 0:
        shutil.rmtree(parent, ignore_errors=True)
        fail(f"the compile failed (exit code {code}): see the lines above")


def generate(plan, pb):
    model_dir = os.path.join(pb, "models", plan["name"])
    shutil.rmtree(model_dir, ignore_errors=True)
    args = [sys.executable, os.path.join(pb, "inferentia", "scripts", "gen_triton_model.py")]
    args += plan["generator_args"] + ["--triton_model_dir", model_dir]
    print("make_model.py: " + " ".join(args))
    code = subprocess.call(args)
    if code != 0:
        fail(f"gen_triton_model.py failed (exit code {code})")
    if plan["generation"] == "neuron-v2":
        # upstream's --inf2 model.py loads the compiled file relative to the model's folder
        link = os.path.join(model_dir, plan["compiled_name"])
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(plan["compiled"], link)
    if os.environ.get("INFPROV_NEURON_STANDIN") == "1":
        shutil.copyfile(os.path.join(HERE, "standin_model.py"), os.path.join(model_dir, "1", "model.py"))


def remove_others(plan):
    """The uploads and compiled artifacts of earlier plans go; this plan's stay."""
    models = os.path.dirname(plan["upload"])
    key = plan["key"]
    for entry in os.listdir(models):
        path = os.path.join(models, entry)
        if entry in (key, key + ".upload"):
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)
    keep = os.path.basename(os.path.dirname(plan["compiled"]))
    mine = os.path.join(models, key)
    for entry in os.listdir(mine):
        if entry.startswith("compiled-") and entry != keep:
            shutil.rmtree(os.path.join(mine, entry), ignore_errors=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--plan", required=True)
    p.add_argument("--python-backend", required=True)
    args = p.parse_args()
    with open(args.plan) as fh:
        plan = json.load(fh)
    token = take_token(plan)
    if not os.path.isfile(plan["upload"]):
        fail("the upload " + plan["upload"] + " is missing: run infprov up again")
    unpack(plan)
    compile_model(plan, token)
    generate(plan, args.python_backend)
    remove_others(plan)
    print("make_model.py: model " + plan["name"] + " made from " + plan["key"][:12])
    return 0


if __name__ == "__main__":
    sys.exit(main())
