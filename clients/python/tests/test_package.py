"""test_package.py - the package installs offline, and its sources keep the
promises a review would check (typed, no pickle, no KEYS, no silent except)."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tempfile

PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(PKG_ROOT, "inferkv")


def sources() -> dict[str, str]:
    return {f: open(os.path.join(SRC, f), encoding="utf-8").read() for f in sorted(os.listdir(SRC))
            if f.endswith(".py")}


def test_pip_install_offline() -> None:
    """`pip install --no-deps --no-build-isolation --no-index` of
    clients/python works with nothing but Debian's setuptools, and the
    installed package carries atomic.lua and py.typed and imports."""
    tmp = tempfile.mkdtemp(prefix="inferkv-pip-")
    try:
        src = os.path.join(tmp, "src")
        shutil.copytree(PKG_ROOT, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__",
                                                                     ".pytest_cache", "tests"))
        target = os.path.join(tmp, "target")
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                            "--disable-pip-version-check", "-q", "--target", target, src],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        for f in ("atomic.lua", "py.typed", "client.py", "aio.py"):
            assert os.path.exists(os.path.join(target, "inferkv", f)), f
        r = subprocess.run([sys.executable, "-c", "import inferkv, sys; print(inferkv.__file__)"],
                           capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=target), cwd=tmp)
        assert r.returncode == 0 and r.stdout.startswith(target), r.stderr
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_no_pickle_no_keys_no_silent_except() -> None:
    """No module imports pickle or sends KEYS; no bare `except:`, and no
    handler whose whole body is `pass`."""
    for name, text in sources().items():
        tree = ast.parse(text, name)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                assert not any(m and "pickle" in m for m in mods), f"{name}: imports pickle"
            if isinstance(node, ast.ExceptHandler):
                assert node.type is not None, f"{name}:{node.lineno}: bare except"
                assert not all(isinstance(s, ast.Pass) for s in node.body), f"{name}:{node.lineno}: except: pass"
            if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
                assert node.value not in ("KEYS", b"KEYS"), f"{name}:{node.lineno}: KEYS"


def test_every_function_is_annotated() -> None:
    """Every function and method in the package annotates its parameters and
    its return type (py.typed promises it)."""
    missing = []
    for name, text in sources().items():
        for node in ast.walk(ast.parse(text, name)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                for a in args:
                    if a.annotation is None and a.arg not in ("self", "cls"):
                        missing.append(f"{name}:{node.lineno} {node.name}({a.arg})")
                for a in (node.args.vararg, node.args.kwarg):
                    if a is not None and a.annotation is None:
                        missing.append(f"{name}:{node.lineno} {node.name}(*{a.arg})")
                if node.returns is None:
                    missing.append(f"{name}:{node.lineno} {node.name} -> ?")
    assert not missing, missing


def test_one_script_source() -> None:
    """One Lua source, loaded from atomic.lua; no other module holds Lua."""
    for name, text in sources().items():
        assert "redis.call(" not in text, f"{name} holds Lua of its own"
    assert "redis.call(" in open(os.path.join(SRC, "atomic.lua"), encoding="utf-8").read()


def test_mypy_finds_nothing() -> None:
    """The package type-checks (mypy; redis-py 4.3 ships no stubs, so only
    its imports are left unchecked)."""
    if subprocess.run([sys.executable, "-m", "mypy", "--version"], capture_output=True).returncode != 0:
        import pytest

        pytest.skip("mypy is not installed (Debian: mypy)")
    cache = tempfile.mkdtemp(prefix="inferkv-mypy-")
    try:
        r = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", cache, "--disable-error-code", "import",
                            "--python-version", "3.11", SRC], capture_output=True, text=True, timeout=300)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    assert r.returncode == 0, r.stdout + r.stderr
