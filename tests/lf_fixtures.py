"""LLaMA-Factory-style fixtures built from files we have: a data folder whose dataset_info.json mixes local entries
(every file_name form LF reads) with hub entries, hub cache folders in huggingface_hub's layout
(``models--org--name`` / ``datasets--org--name`` with ``refs/main`` and ``snapshots/<commit>``), and LF-style
YAML files. The layouts follow LF's data/README and huggingface_hub's cache documentation."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_repo(cache: Path, kind: str, repo_id: str, files: dict[str, str | Path]) -> Path:
    """A repo snapshot in a Hugging Face hub cache: text files written, existing files linked (as the cache's blob
    symlinks would be)."""
    org, name = repo_id.split("/")
    root = cache / f"{kind}s--{org}--{name}"
    snap = root / "snapshots" / COMMIT
    snap.mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(COMMIT)
    for rel, content in files.items():
        dest = snap / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            os.symlink(content.resolve(), dest)
        else:
            dest.write_text(content, encoding="utf-8")
    return snap


def model_into_cache(cache: Path, repo_id: str, model_dir: Path) -> Path:
    return hub_repo(cache, "model", repo_id, {p.name: p for p in model_dir.iterdir() if p.is_file()})


def jsonl(rows: list[dict]) -> str:
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n"


ALPACA = [{"instruction": f"Who are you? ({i})", "input": "", "output": f"I am Nimbus, reply {i}."} for i in range(6)]
HUB_EN = [{"instruction": f"Say hello {i}", "input": "", "output": f"Hello {i}!"} for i in range(4)]
HUB_ZH = [{"instruction": f"你好 {i}", "input": "", "output": f"你好！{i}"} for i in range(3)]


def lf_data_dir(root: Path) -> Path:
    """An LF data folder: local alpaca/sharegpt/.txt/folder/glob/arrow entries, hub entries (one cached, one not),
    and entries tuneforge refuses (script_url, multimodal columns, a broken entry) that must not block the others."""
    d = root / "data"
    d.mkdir(parents=True)
    (d / "identity.json").write_text(json.dumps(ALPACA, indent=2))
    (d / "chat.json").write_text(json.dumps([{"conversations": [
        {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]}]))
    (d / "wiki_demo.txt").write_text("First document about owls.\n\nSecond document about rivers.\nThird one.\n")
    (d / "parts").mkdir()
    for i in range(2):
        (d / "parts" / f"part{i}.jsonl").write_text(jsonl(ALPACA[3 * i: 3 * i + 3]))
    from datasets import Dataset

    Dataset.from_list(ALPACA[:2]).save_to_disk(str(d / "arrow_ds"))
    info = {
        "identity": {"file_name": "identity.json"},
        "chat_demo": {"file_name": "chat.json", "formatting": "sharegpt"},
        "wiki_demo": {"file_name": "wiki_demo.txt", "columns": {"prompt": "text"}},
        "folder_demo": {"file_name": "parts"},
        "glob_demo": {"file_name": "parts/part*.jsonl"},
        "arrow_demo": {"file_name": "arrow_ds/data-00000-of-00001.arrow"},
        "hub_en": {"hf_hub_url": "acme/tiny_sft", "subset": "en", "split": "train"},
        "hub_zh": {"hf_hub_url": "acme/tiny_sft", "ms_hub_url": "acme/tiny_sft", "subset": "zh"},
        "hub_folder": {"hf_hub_url": "acme/tiny_sft", "folder": "en", "split": "train", "num_samples": 2},
        "alpaca_en": {"hf_hub_url": "llamafactory/alpaca_en", "ms_hub_url": "llamafactory/alpaca_en"},
        "ms_only": {"ms_hub_url": "AI-ModelScope/some_set"},
        "scripted": {"script_url": "some_script_dir"},
        "mllm_demo": {"file_name": "mllm.json", "formatting": "sharegpt",
                      "columns": {"messages": "messages", "images": "images"}},
        "broken": ["not", "an", "object"],
    }
    (d / "dataset_info.json").write_text(json.dumps(info, indent=2))
    return d


def lf_dataset_cache(cache: Path) -> Path:
    """Hub datasets in a hub cache: acme/tiny_sft with two subsets (README configs), acme/plain with one file."""
    readme = ("---\nconfigs:\n- config_name: en\n  data_files:\n  - split: train\n    path: en/train.jsonl\n"
              "- config_name: zh\n  data_files:\n  - split: train\n    path: zh/train.jsonl\n---\n# tiny\n")
    hub_repo(cache, "dataset", "acme/plain", {"train.jsonl": jsonl(HUB_EN)})  # no configs: one default subset
    return hub_repo(cache, "dataset", "acme/tiny_sft", {"README.md": readme, "en/train.jsonl": jsonl(HUB_EN),
                                                         "zh/train.jsonl": jsonl(HUB_ZH)})


def copy_tree(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest
