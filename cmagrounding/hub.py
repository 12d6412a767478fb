"""Where a pretrained model's name points: the one place names are resolved (STYLE.md, principle 4).

A name is, in this order:

* ``local-dir:PATH`` — a local folder, explicitly;
* ``hf-hub:ORG/NAME`` — a Hugging Face hub repository, explicitly;
* an existing local folder;
* ``ORG/NAME`` — a hub repository id, fetched with :func:`huggingface_hub.snapshot_download`
  (only the files of the pretrained format) at ``revision`` (a branch, tag or commit hash), or
  read from the local hub cache when ``HF_HUB_OFFLINE=1``.

Anything else (a path that does not exist, a string that is not a valid repo id) is refused with
a :class:`~cmagrounding.errors.PretrainedNotFoundError` that says which of these it tried.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Sequence

from cmagrounding.errors import CheckpointError, PretrainedNotFoundError

_logger = logging.getLogger(__name__)

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set (read now, not when huggingface_hub was imported)."""
    value = os.environ.get("HF_HUB_OFFLINE", "")
    if value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:  # pragma: no cover - huggingface_hub is a core dependency
        return False


def is_repo_id(name: str) -> bool:
    """True for ``org/name``-shaped strings (what the hub accepts as a model repo id)."""
    return bool(_REPO_ID.match(name)) and ".." not in name and not name.endswith((".", "-"))


def resolve_pretrained(
    name: str | os.PathLike[str],
    revision: str | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    token: str | bool | None = None,
    allow_patterns: Sequence[str] | None = None,
) -> Path:
    """The local folder that holds the pretrained model ``name`` (see the module docstring).

    ``allow_patterns``: the only files fetched from a hub repo (the pretrained folder's files when
    called through :mod:`cmagrounding._pretrained`); None fetches the whole repo.

    ``revision`` applies to hub ids only; giving one with a local folder is an error, because a
    folder has no revisions and silently ignoring it would load something other than asked.
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str) or not name.strip():
        raise PretrainedNotFoundError(f"a model name must be a non-empty string or path, got {name!r}")
    if name.startswith("local-dir:"):
        return _local_folder(name[len("local-dir:") :], revision)
    if name.startswith("hf-hub:"):
        return _hub_folder(name[len("hf-hub:") :], revision, cache_dir, token, allow_patterns)
    path = Path(name).expanduser()
    if path.is_dir():
        if is_repo_id(name):
            _logger.debug("%r is a local folder; using it (write hf-hub:%s for the hub repo)", name, name)
        return _local_folder(name, revision)
    if path.exists():
        raise PretrainedNotFoundError(f"{name!r} is a file; a pretrained model is a folder (config.json, model.safetensors, ...)")
    if is_repo_id(name) and not name.startswith((".", "~")):
        return _hub_folder(name, revision, cache_dir, token, allow_patterns)
    raise PretrainedNotFoundError(
        f"{name!r} is neither an existing local folder nor a hub repo id of the form 'org/name' "
        "(prefix with local-dir: or hf-hub: to say which you mean)"
    )


def _local_folder(path: str, revision: str | None) -> Path:
    folder = Path(path).expanduser()
    if revision is not None:
        raise PretrainedNotFoundError(
            f"revision={revision!r} was given but {path!r} is a local folder, which has no revisions"
        )
    if not folder.is_dir():
        raise PretrainedNotFoundError(f"local model folder {str(folder)!r} does not exist")
    return folder


def _hub_folder(
    repo_id: str, revision: str | None, cache_dir: str | os.PathLike[str] | None, token: str | bool | None,
    allow_patterns: Sequence[str] | None,
) -> Path:
    if not is_repo_id(repo_id):
        raise PretrainedNotFoundError(f"{repo_id!r} is not a valid hub repo id (expected 'org/name')")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    offline = hub_offline()
    where = f"{repo_id!r}" + (f" at revision {revision!r}" if revision else "")
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            allow_patterns=list(allow_patterns) if allow_patterns is not None else None,
            local_files_only=offline,
            library_name="cmagrounding",
        )
    except LocalEntryNotFoundError as e:
        if offline:
            raise PretrainedNotFoundError(
                f"hub model {where} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids "
                "downloading it; download it once while online, or pass a local folder"
            ) from e
        raise PretrainedNotFoundError(f"hub model {where} could not be downloaded: {e}") from e
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise PretrainedNotFoundError(f"hub model {where} could not be fetched: {type(e).__name__}: {e}") from e
    _logger.info("hub model %s resolved to %s", where, folder)
    return Path(folder)


def push_folder_to_hub(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    commit_message: str = "Upload cmagrounding model",
    create_pr: bool = False,
    allow_patterns: Sequence[str] | None = None,
) -> str:
    """Upload a saved pretrained folder to the hub repo ``repo_id`` (created if needed).

    Returns the URL of the commit. Only the files matching ``allow_patterns`` are uploaded (the
    pretrained format's files when called through :mod:`cmagrounding._pretrained`).
    """
    if not is_repo_id(repo_id):
        raise CheckpointError(f"{repo_id!r} is not a valid hub repo id (expected 'org/name')")
    if hub_offline():
        raise CheckpointError(f"cannot push to {repo_id!r}: HF_HUB_OFFLINE=1 is set")
    from huggingface_hub import HfApi

    api = HfApi(token=token, library_name="cmagrounding")
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=os.fspath(folder),
        revision=revision,
        commit_message=commit_message,
        allow_patterns=list(allow_patterns) if allow_patterns is not None else None,
        create_pr=create_pr,
    )
    return str(getattr(info, "commit_url", info))
