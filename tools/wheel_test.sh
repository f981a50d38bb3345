#!/usr/bin/env bash
# The package as `pip install fastcam` gives it: build the sdist and the wheel, check their metadata, install the wheel
# (not editable) into a fresh virtual environment, and use it from outside the repository. The fresh environment
# reuses the test environment's packages through a .pth line (no second torch download) and installs with
# --no-index, so a dependency the wheel declares but nothing provides fails the install.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="$(cd "${VENV:-.venv}" && pwd)"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
"$VENV/bin/python" -m build --outdir "$tmp/dist" . >"$tmp/build.log" 2>&1 || { tail -30 "$tmp/build.log"; exit 1; }
"$VENV/bin/python" -m twine check --strict "$tmp"/dist/*
# Listings are read into a variable before grep: `producer | grep -q` under pipefail fails at random when grep exits
# on its match while the producer still writes (SIGPIPE, exit 141) - this failed CI once.
files="$(unzip -Z1 "$tmp"/dist/*.whl)"
grep -q 'fastcam-.*dist-info/licenses/LICENSE' <<<"$files" || { echo 'wheel: no LICENSE in the wheel'; exit 1; }
grep -q 'fastcam/models/pets-resnet18-96px-n2000-6ep-lr0.003-bs32-seed0.pth' <<<"$files" || { echo "wheel: the lessons' model (fastcam/models/) is not in the wheel"; exit 1; }
base="$("$VENV/bin/python" -c 'import sys; print(sys._base_executable)')"
"$base" -m venv --without-pip "$tmp/venv"                     # no pip, no old setuptools to shadow the test environment's
site="$("$tmp/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' >"$site/test_env.pth"
"$VENV/bin/python" -m pip --python "$tmp/venv/bin/python" install -q --no-index "$tmp"/dist/*.whl
cd "$tmp"                                                     # away from the repository, whose fastcam/ would shadow the wheel's
"$tmp/venv/bin/python" - "$tmp/venv" <<'PY'
import sys, fastcam
assert fastcam.__file__.startswith(sys.argv[1]), f'fastcam imported from {fastcam.__file__}, not the wheel'
from fastcam.all import *
torch.manual_seed(0)
m = resnet18(weights=None).eval()
maps = gradcam_maps(m, torch.randn(2, 3, 64, 64))
assert maps.shape == (2, 2, 2) and n_hooks(m) == 0
from fastcam.learner import _pets_model_file
f = _pets_model_file('resnet18', 96, 2000, 6, 3e-3, 32, 0, False)          # the lessons' model, shipped: pets_learner() loads it
assert str(f).startswith(sys.argv[1]) and f.exists(), f
print(f'wheel: fastcam {fastcam.__version__} from {fastcam.__file__}: gradcam_maps ok')
PY
"$tmp/venv/bin/fastcam" --help >/dev/null
demo_help="$("$tmp/venv/bin/fastcam" demo --help)"
grep -q -- '--fp32' <<<"$demo_help"
"$tmp/venv/bin/fastcam" demo --out "$tmp/demo" --n 200 --size 64 --epochs 1 --bs 16 --k 4 >"$tmp/demo.log" 2>&1 || { tail -30 "$tmp/demo.log"; exit 1; }
test -f "$tmp/demo/summary.json" && test -f "$tmp/demo/top_losses.png" && test "$(ls "$tmp/demo/cams"/*.png | wc -l)" -eq 4
echo "wheel: $(cd "$tmp/dist" && ls | tr '\n' ' ')built, checked, installed and run from a fresh environment"
