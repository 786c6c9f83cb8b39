#!/usr/bin/env bash
# Device checks for a GPU machine, run from the repository root with the dependencies installed:
# the gpu-marked tests (CUDA vs CPU on random-init models, NaN/zero layers on CUDA, CUDA fits),
# the fit timing on CUDA tensors, and vgg16 ``analyze`` on CUDA vs this machine's CPU.
#   bash benchmarks/gpu_check.sh
set -u
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
timeout 420 python -m pytest -q -m gpu -p no:cacheprovider --continue-on-collection-errors \
    tests/test_gpu.py tests/test_metrics.py tests/test_fit.py 2>&1 | tail -25
timeout 150 python benchmarks/bench_fit.py --gpu --repeat 3 2>&1 | tail -8
timeout 200 python - <<'PY'
import time

import torch
import torchvision

import htsr

torch.manual_seed(0)
model = torchvision.models.get_model("vgg16", weights=None).eval()
htsr.analyze(torch.nn.Sequential(torch.nn.Linear(64, 64)), device="cuda")  # CUDA warm-up
for device, dtype in (("cuda", "float64"), ("cuda", "float32"), ("cpu", "float32"), ("cpu", "float64")):
    t0 = time.perf_counter()
    table = htsr.analyze(model, device=device, dtype=dtype)
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    print(f"vgg16 paper {device} {dtype}: {dt:.2f} s, {int((table.status == 'ok').sum())} ok rows,"
          f" alpha_hat {htsr.summarize(table)['alpha_weighted']:.4f}", flush=True)
PY
