"""Datasets named by a hub id (dataset_info.json's ``hf_hub_url`` / ``ms_hub_url``, or ``dataset_dir: ONLINE``),
loaded through ``datasets.load_dataset`` with the entry's ``subset``, ``folder`` and ``split`` as LLaMA-Factory
loads them. Online, datasets downloads and caches the data itself; offline (``HF_HUB_OFFLINE=1``) the repo's
snapshot in the Hugging Face cache is loaded (``hf download --repo-type dataset ID`` puts it there)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tuneforge.config.messages import Msg
from tuneforge.data.catalog import DatasetEntry
from tuneforge.errors import DataError
from tuneforge.utils import log
from tuneforge.utils.hub import HubMissing, HubOptions, offline, snapshot


def load_hub_dataset(entry: DatasetEntry, opts: HubOptions):
    """A ``datasets.Dataset`` of the entry's split."""
    use_ms = bool(entry.ms_hub_id) and (opts.modelscope or not entry.hub_id)
    repo = entry.ms_hub_id if use_ms else entry.hub_id
    kwargs: dict[str, Any] = {"name": entry.subset, "data_dir": entry.folder, "split": entry.split}
    try:
        import datasets
    except ImportError:
        raise DataError(Msg("data_hub_needs_datasets", name=entry.name), Msg("data_hub_needs_datasets_fix")) from None
    if use_ms:
        try:
            from modelscope import MsDataset  # type: ignore
        except ImportError:
            raise DataError(Msg("data_hub_needs_modelscope", name=entry.name, repo=repo),
                            Msg("data_hub_needs_modelscope_fix")) from None
        ds = MsDataset.load(dataset_name=repo, subset_name=entry.subset, data_dir=entry.folder, split=entry.split,
                            cache_dir=opts.cache_dir, token=opts.ms_token)
        return ds.to_hf_dataset() if hasattr(ds, "to_hf_dataset") else ds
    first_error = None
    if not offline():  # datasets' own download/cache path (it also covers its processed cache)
        try:
            return datasets.load_dataset(repo, cache_dir=opts.cache_dir, token=opts.token, **kwargs)
        except Exception as e:  # network, auth, missing config/split: try the hub cache before giving up
            first_error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else e}"
    try:
        local = snapshot(repo, HubOptions(revision="main", cache_dir=opts.cache_dir, token=opts.token),
                         repo_type="dataset")
    except HubMissing as e:
        raise DataError(Msg("data_hub_missing", name=entry.name, repo=repo, why=first_error or e.why),
                        Msg("data_hub_missing_fix", repo=repo)) from None
    try:
        return datasets.load_dataset(str(local), cache_dir=opts.cache_dir, **kwargs)
    except Exception as e:
        raise DataError(Msg("data_hub_load_failed", name=entry.name, repo=repo, path=str(local),
                            why=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else e}"),
                        Msg("data_hub_load_failed_fix")) from None


def hub_rows(entry: DatasetEntry, opts: HubOptions) -> Iterator[tuple[str, dict[str, Any]]]:
    ds = load_hub_dataset(entry, opts)
    repo = entry.hub_id or entry.ms_hub_id
    log.info(f"dataset {entry.name}: {len(ds)} rows from hub dataset {repo} (split {entry.split}"
             + (f", subset {entry.subset}" if entry.subset else "") + (f", folder {entry.folder}" if entry.folder
                                                                       else "") + ")")
    for i, row in enumerate(ds, start=1):
        yield Msg("data_hub_row", repo=repo, split=entry.split, n=i), dict(row)
