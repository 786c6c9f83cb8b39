"""The OSMR model store (``osmr/imgclsmob``, the ``pytorchcv`` package): its file names and zips.

The 2019 and 2021 papers analysed most of their models from the OSMR "sandbox". pytorchcv's
model store (``pytorchcv/models/common/model_store.py``) names each pretrained file by the model,
a 4-digit error code (the top-5 error × 100 of those weights) and the first 8 hex digits of the
file's SHA-1, and downloads it zipped from a GitHub release::

    file_name = "{name}-{error}-{short_sha1}.pth"
    url = "{repo_url}/releases/download/{repo_release_tag}/{file_name}.zip"

then checks the SHA-1 of the unpacked ``.pth``. This module builds and parses those names and
reads the ``.pth`` from inside the zip, so that no old pytorchcv has to be installed and no
unpacked copy is written: the weights are analysed from the state_dict's tensors
(:func:`htsr.weights.checkpoints.load_state_dict` reads ``*.pth.zip``).

Example
-------
>>> store_url("resnet18", "1021", "b0d7daeaab950f2a7106c8062c7435627b3fe3da", "v0.0.1")
'https://github.com/osmr/imgclsmob/releases/download/v0.0.1/resnet18-1021-b0d7daea.pth.zip'
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "IMGCLSMOB_REPO_URL",
    "StoreFile",
    "member_sha1",
    "parse_store_url",
    "store_file_name",
    "store_url",
    "zip_member",
]

#: ``imgclsmob_repo_url`` of pytorchcv's model store: where its release assets live.
IMGCLSMOB_REPO_URL = "https://github.com/osmr/imgclsmob"

_STORE_URL = re.compile(
    r"^(?P<repo>.+)/releases/download/(?P<tag>[^/]+)/"
    r"(?P<name>[^/]+)-(?P<error>\d{4})-(?P<sha8>[0-9a-f]{8})\.pth\.zip$"
)


@dataclass(frozen=True)
class StoreFile:
    """One weight file of the store: ``name-error-sha8.pth`` in release ``release_tag``."""

    repo_url: str
    release_tag: str
    name: str
    error: str
    short_sha1: str

    @property
    def member(self) -> str:
        """The ``.pth`` file inside the zip (what the store's SHA-1 is computed over)."""
        return f"{self.name}-{self.error}-{self.short_sha1}.pth"


def store_file_name(name: str, error: str, sha1: str) -> str:
    """``"{name}-{error}-{sha1[:8]}.pth"``, the store's name for a weight file."""
    return f"{name}-{error}-{sha1[:8]}.pth"


def store_url(
    name: str, error: str, sha1: str, release_tag: str, repo_url: str = IMGCLSMOB_REPO_URL
) -> str:
    """The download URL pytorchcv's model store builds for a weight file (a ``.pth.zip``)."""
    file_name = store_file_name(name, error, sha1)
    return f"{repo_url.rstrip('/')}/releases/download/{release_tag}/{file_name}.zip"


def parse_store_url(url: str) -> StoreFile:
    """Split a store URL into its parts; ``ValueError`` if it is not of the store's form."""
    match = _STORE_URL.match(url)
    if match is None:
        raise ValueError(
            f"{url!r} is not a model-store URL"
            " ({repo}/releases/download/{tag}/{name}-{error}-{sha1[:8]}.pth.zip)"
        )
    return StoreFile(
        repo_url=match["repo"],
        release_tag=match["tag"],
        name=match["name"],
        error=match["error"],
        short_sha1=match["sha8"],
    )


def zip_member(path: str | os.PathLike[str], member: str | None = None) -> str:
    """The name of the checkpoint inside the zip ``path``: ``member`` if given (it must exist),
    else its only ``.pth``/``.pt``/``.bin``/``.ckpt``/``.tar`` file (a torch.save file).
    ``ValueError`` naming the file otherwise; ``zipfile.BadZipFile`` if ``path`` is not a
    readable zip."""
    with zipfile.ZipFile(path) as zf:
        names = [i.filename for i in zf.infolist() if not i.is_dir()]
    if member is not None:
        if member not in names:
            raise ValueError(
                f"{path}: the zip holds no {member} (it holds {', '.join(names) or 'nothing'})"
            )
        return member
    checkpoints = [n for n in names if n.lower().endswith((".pth", ".pt", ".bin", ".ckpt", ".tar"))]
    if len(checkpoints) != 1:
        raise ValueError(
            f"{path}: expected exactly one .pth/.pt/.bin/.ckpt/.tar file in the zip, found"
            f" {len(checkpoints)} ({', '.join(names) or 'nothing'})"
        )
    return checkpoints[0]


def member_sha1(path: str | os.PathLike[str], member: str, *, chunk_bytes: int = 1 << 20) -> str:
    """SHA-1 hex digest of ``member`` of the zip ``path``, streamed (nothing is unpacked).

    Raises ``zipfile.BadZipFile`` (or ``zlib.error``/``EOFError``) for a damaged archive, and
    ``KeyError`` if the member is missing; the CRC-32 of the member is checked as it is read.
    """
    digest = hashlib.sha1(usedforsecurity=False)
    with zipfile.ZipFile(Path(path)) as zf, zf.open(member) as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()
