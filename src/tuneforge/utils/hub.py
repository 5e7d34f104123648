"""Hub access through the libraries' own download-and-cache code (huggingface_hub; ModelScope when asked).

Nothing here downloads by hand: a hub id resolves to a local snapshot folder through ``snapshot_download`` (which
reuses the Hugging Face cache, ``HF_HOME`` / ``HF_HUB_CACHE`` or ``cache_dir``), and with ``HF_HUB_OFFLINE=1`` only
the cache is consulted (``local_files_only``), so an offline run never waits on the network.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from tuneforge.utils import log

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
TRUE = {"1", "on", "yes", "true"}


@dataclass(frozen=True)
class HubOptions:
    """LLaMA-Factory's hub settings (model_revision, cache_dir, hf_hub_token, ms_hub_token, use_modelscope_hub)."""

    revision: str = "main"
    cache_dir: str | None = None
    token: str | None = None
    ms_token: str | None = None
    modelscope: bool = False

    @classmethod
    def from_model_args(cls, m) -> "HubOptions":
        return cls(revision=getattr(m, "model_revision", "main") or "main", cache_dir=getattr(m, "cache_dir", None),
                   token=getattr(m, "hf_hub_token", None), ms_token=getattr(m, "ms_hub_token", None),
                   modelscope=use_modelscope(getattr(m, "use_modelscope_hub", False)))


def use_modelscope(flag: bool = False) -> bool:
    """use_modelscope_hub, or LLaMA-Factory's own switch USE_MODELSCOPE_HUB=1."""
    return bool(flag) or os.environ.get("USE_MODELSCOPE_HUB", "").strip().lower() in TRUE


def offline() -> bool:
    """HF_HUB_OFFLINE (read now, not when huggingface_hub was imported)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUE:
        return True
    try:
        from huggingface_hub import is_offline_mode

        return bool(is_offline_mode())
    except ImportError:
        return False


def looks_like_hub_id(name: str) -> bool:
    """``org/name`` that is not an existing local path."""
    return bool(HUB_ID.match(name)) and not Path(name).expanduser().exists()


class HubMissing(Exception):
    """The id is not in the local cache (offline) or could not be fetched; ``why`` says which."""

    def __init__(self, why: str):
        super().__init__(why)
        self.why = why


def snapshot(repo_id: str, opts: HubOptions, repo_type: str = "model", allow_patterns=None) -> Path:
    """A local folder holding ``repo_id`` at ``opts.revision``: from the cache, downloading first when online."""
    if opts.modelscope:
        return _modelscope_snapshot(repo_id, opts, repo_type)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    local_only = offline()
    try:
        path = snapshot_download(repo_id, repo_type=repo_type, revision=opts.revision, cache_dir=opts.cache_dir,
                                 token=opts.token, local_files_only=local_only, allow_patterns=allow_patterns)
    except LocalEntryNotFoundError:
        where = opts.cache_dir or "the Hugging Face cache"
        if local_only:
            raise HubMissing(f"not in {where} and HF_HUB_OFFLINE is set") from None
        raise HubMissing(f"could not be downloaded and is not in {where}") from None
    except Exception as e:  # RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError, HTTP errors
        raise HubMissing(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else e}") from None
    log.choice(f"{repo_type} {repo_id}@{opts.revision}", f"{'cached' if local_only else 'hub'} snapshot at {path}")
    return Path(path)


def _modelscope_snapshot(repo_id: str, opts: HubOptions, repo_type: str) -> Path:
    try:
        from modelscope import snapshot_download  # type: ignore
    except ImportError:
        raise HubMissing("use_modelscope_hub needs the modelscope package: pip install modelscope") from None
    try:
        path = snapshot_download(repo_id, revision=None if opts.revision == "main" else opts.revision,
                                 cache_dir=opts.cache_dir, repo_type=repo_type)
    except Exception as e:
        raise HubMissing(f"ModelScope: {type(e).__name__}: {e}") from None
    log.choice(f"{repo_type} {repo_id}", f"ModelScope snapshot at {path}")
    return Path(path)
