"""Model files the tests make without torch or transformers: a TorchScript archive laid out as torch.jit.save
writes it (a zip of one top folder with data.pkl, constants.pkl, code/, version), a torch.save checkpoint
(no code/), and a Hugging Face hub folder (config.json, weights, tokenizer files)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path


def torchscript(path: Path, payload: bytes = b"weights") -> Path:
    top = path.stem
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{top}/data.pkl", b"\x80\x02}q\x00.")
        z.writestr(f"{top}/constants.pkl", b"\x80\x02).")
        z.writestr(f"{top}/code/__torch__/model.py", "class Model(Module):\n  def forward(self, x): return x\n")
        z.writestr(f"{top}/data/0", payload)
        z.writestr(f"{top}/version", "3\n")
    return path


def checkpoint(path: Path) -> Path:
    top = path.stem
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{top}/data.pkl", b"\x80\x02}q\x00.")
        z.writestr(f"{top}/data/0", b"weights")
        z.writestr(f"{top}/version", "3\n")
    return path


def tiny_bert(folder: Path, vocab: int = 1000, labels: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {"architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": vocab,
              "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
              "max_position_embeddings": 512, "id2label": {str(i): f"LABEL_{i}" for i in range(labels)}}
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                                                + [f"w{i}" for i in range(vocab - 5)]) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 512}))
    return folder
