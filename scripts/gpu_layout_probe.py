"""Does SDPA keep its fastest kernel for the engine's [B, L, H, d] -> transpose(1, 2) layout, and what do the
per-block elementwise steps cost at the 832x480 chunk? Prints JSON lines."""
import json, torch
from gpu_attention_probe import timed  # noqa: E402  (runs that probe's prints too)

L, H, d, D, keys = 4680, 12, 128, 1536, 14040
q = torch.randn(1, L, H, d, device="cuda", dtype=torch.bfloat16)
k = torch.randn(1, keys, H, d, device="cuda", dtype=torch.bfloat16)
v = torch.randn_like(k)
s = timed(lambda: torch.nn.functional.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)))
print(json.dumps({"probe": "sdpa_bshd_layout", "ms": s * 1e3, "tflops": 4.0 * L * keys * H * d / s / 1e12}))
x = torch.randn(1, L, D, device="cuda", dtype=torch.bfloat16)
tab = torch.polar(torch.ones(L, d // 2, device="cuda"), torch.rand(L, d // 2, device="cuda"))
rope = lambda: torch.view_as_real(torch.view_as_complex(q.float().reshape(1, L, H, d // 2, 2)) * tab.view(1, L, 1, d // 2)).view(1, L, H, d).to(torch.bfloat16)
print(json.dumps({"probe": "rope", "ms": timed(rope) * 1e3}))
w = torch.ones(D, device="cuda", dtype=torch.bfloat16)
print(json.dumps({"probe": "rms_norm", "ms": timed(lambda: torch.rms_norm(x, (D,), w, 1e-6)) * 1e3}))
print(json.dumps({"probe": "layer_norm", "ms": timed(lambda: torch.layer_norm(x, (D,), None, None, 1e-6)) * 1e3}))
sc = torch.randn(1, 3, 1, D, device="cuda", dtype=torch.bfloat16)
print(json.dumps({"probe": "addcmul", "ms": timed(lambda: torch.addcmul(sc, x.view(1, 3, L // 3, D), 1 + sc)) * 1e3}))
h = torch.randn(1, L, 8960, device="cuda", dtype=torch.bfloat16)
print(json.dumps({"probe": "gelu_tanh_ffn", "ms": timed(lambda: torch.nn.functional.gelu(h, approximate="tanh")) * 1e3}))
