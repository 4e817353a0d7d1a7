"""Floors for the 832x480 chunk on this GPU: SDPA throughput per backend at the streaming shape
(queries = one chunk, keys = sink + window + chunk) and the chunk's matmul shapes. Prints JSON lines."""
import json, time, torch
from torch.nn.attention import SDPBackend, sdpa_kernel

def timed(fn, reps=20):
    fn(); torch.cuda.synchronize()
    start = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    end = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for s, e in zip(start, end):
        s.record(); fn(); e.record()
    torch.cuda.synchronize()
    return sorted(s.elapsed_time(e) for s, e in zip(start, end))[reps // 2] / 1e3

L, H, d, D, F = 4680, 12, 128, 1536, 8960
for keys in (L, 3 * L):
    q = torch.randn(1, H, L, d, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, H, keys, d, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)
    flop = 4.0 * L * keys * H * d
    for name, backend in [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                          ("efficient", SDPBackend.EFFICIENT_ATTENTION)]:
        try:
            with sdpa_kernel([backend]):
                s = timed(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v))
            print(json.dumps({"probe": "sdpa", "backend": name, "keys": keys, "ms": s * 1e3, "tflops": flop / s / 1e12}))
        except Exception as e:
            print(json.dumps({"probe": "sdpa", "backend": name, "keys": keys, "error": str(e)[:200]}))
    with torch.no_grad():
        s = timed(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v))
    print(json.dumps({"probe": "sdpa", "backend": "default", "keys": keys, "ms": s * 1e3, "tflops": flop / s / 1e12}))
x = torch.randn(L, D, device="cuda", dtype=torch.bfloat16)
for n_out, n_in in ((D, D), (F, D), (D, F)):
    w = torch.randn(n_out, n_in, device="cuda", dtype=torch.bfloat16)
    xx = torch.randn(L, n_in, device="cuda", dtype=torch.bfloat16)
    s = timed(lambda: torch.nn.functional.linear(xx, w))
    print(json.dumps({"probe": "linear", "shape": [L, n_in, n_out], "ms": s * 1e3, "tflops": 2.0 * L * n_in * n_out / s / 1e12}))
