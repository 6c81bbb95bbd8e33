"""What `pip install .` (or from git) installs: a wheel built from the repository holds the native kernel's
C++ source, and the kernel compiles from the installed package, not only from an editable checkout."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import torch
from pipeline.models import DDLSTM, native
assert native.available(), native.unavailable_reason()
print(native.SOURCE)
torch.manual_seed(0)
model = DDLSTM(5, 8, 2, implementation="native")
x = torch.randn(6, 4, 5)
native_out = model(x, domain_sizes=[3, 3])
model.implementation = "fused"
torch.testing.assert_close(native_out, model(x, domain_sizes=[3, 3]), rtol=1e-4, atol=1e-5)
print("native kernel ok")
"""


def test_a_built_wheel_ships_the_kernel_source_and_the_kernel_builds_from_it(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True, cwd=tmp_path, timeout=600)
    (wheel,) = (tmp_path / "dist").glob("ddlstm-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "pipeline/models/native/sequence_kernel.cpp" in names
    assert any(name.endswith("licenses/LICENSE") for name in names)
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True, cwd=tmp_path, timeout=600)
    # a fresh extensions folder: the kernel is compiled from the installed source, not taken from a cache
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "TORCH_EXTENSIONS_DIR": str(tmp_path / "build"),
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, cwd=tmp_path, env=env,
                            timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    source, status = result.stdout.strip().splitlines()[:2]
    assert Path(source).is_relative_to(tmp_path / "site"), source
    assert status == "native kernel ok"
    assert list((tmp_path / "build").rglob("*.so")), "no kernel was compiled"
