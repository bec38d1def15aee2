"""Quantization schemes and the encoder's tensor roles they are written in.

Every activation tensor of the exported encoder (ONNX or TFLite) is given a *role* by
``onnx_qdq.tensor_roles`` / ``tflite_quant.tensor_roles``: where it sits in Whisper's encoder
(block, and one of ROLES). A scheme says, per role, how many bits the tensor gets:

    a8w8-tensor   8-bit activations, 8-bit per-tensor weights (the users' failing case)
    a8w8          8-bit activations, 8-bit per-channel weights (the users' failing case, per channel)
    a16w8         16-bit symmetric activations, 8-bit per-channel weights (what MDLA 3.0 runs)
    w8            weight-only int8 (per channel): activations and arithmetic stay float
    mixed:...     8-bit activations except the groups/roles listed at 16 bits, e.g.
                  ``mixed:resid=16,softmax=16,b3.fc2=16`` (or ``a16w8:fc1=8``: 16-bit except ...)

LayerNorm statistics (mean, variance, rsqrt) are never put on an integer grid: ONNX keeps them
inside the fused LayerNormalization op, TFLite's split form keeps those ops in float.

MACs: the encoder's matrix products (the conv stem, q/k/v/out projections, q·kᵀ, softmax·v,
fc1, fc2). A product runs in int8 when every activation it reads is 8-bit (weights are 8-bit in
every static scheme); ``int8_mac_share`` is the fraction of all MACs that do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from ...errors import InvalidOptionError

# Roles of activation tensors, in graph order. "pos" is the stem's output plus the positional
# embedding: the first residual-stream tensor.
STEM_ROLES = ("mel", "conv1", "gelu1", "conv2", "gelu2", "pos")
BLOCK_ROLES = ("ln1", "q", "k", "v", "qk", "softmax", "pv", "attn_out", "resid1", "ln2", "fc1", "gelu", "fc2",
               "resid2")
POST_ROLES = ("ln_post",)
ROLES = STEM_ROLES + BLOCK_ROLES + POST_ROLES

# Groups: the units of the mixed-precision search and the words of the report.
GROUPS: dict[str, tuple[str, ...]] = {
    "mel": ("mel",),
    "stem": ("conv1", "gelu1", "conv2", "gelu2"),
    "resid": ("pos", "resid1", "resid2"),
    "ln": ("ln1", "ln2"),
    "qkv": ("q", "k", "v"),
    "logits": ("qk",),
    "softmax": ("softmax",),
    "attn_v": ("pv",),
    "attn_out": ("attn_out",),
    "fc1": ("fc1",),
    "gelu": ("gelu",),
    "fc2": ("fc2",),
    "output": ("ln_post",),
}
GROUP_OF = {r: g for g, rs in GROUPS.items() for r in rs}
# The statistics of a LayerNorm that the TFLite converter splits into elementwise ops (mean,
# squared difference, variance, rsqrt): always float, never a group of the search.
LN_STATS = "ln_stats"
GROUP_OF[LN_STATS] = LN_STATS
DESCRIPTION = {
    "mel": "the encoder input (log-mel)",
    "stem": "the conv stem (conv1, GELU, conv2, GELU)",
    "resid": "the residual stream (positional add and the residual adds)",
    "ln": "LayerNorm outputs (the projections' and fc1's input)",
    "qkv": "the q/k/v projections",
    "logits": "attention logits q·kᵀ",
    "softmax": "softmax probabilities over 1500 frames",
    "attn_v": "attention output softmax·v",
    "attn_out": "the attention out-projection",
    "fc1": "fc1 (the GELU's input)",
    "gelu": "GELU output (fc2's input)",
    "fc2": "fc2 output",
    "output": "ln_post: the encoder output",
    LN_STATS: "LayerNorm statistics (mean, variance, rsqrt) of the split LayerNorm",
}


@dataclass(frozen=True)
class Role:
    block: int  # -1: stem, n_layer: post
    role: str

    @property
    def group(self) -> str:
        return GROUP_OF[self.role]

    @property
    def key(self) -> str:
        if self.role in STEM_ROLES or self.role in POST_ROLES:
            return self.role
        return f"b{self.block}.{self.role}"


@dataclass(frozen=True)
class Scheme:
    """How many bits each activation role gets, and how weights are quantized."""

    name: str
    kind: str = "static"  # "static" | "weight_only" | "float"
    activation_bits: int = 8
    weight_bits: int = 8
    per_channel: bool = True
    overrides: Mapping[str, int] = field(default_factory=dict)  # group | role | "b{i}.role" -> bits

    def bits(self, role: Role) -> int:
        """Bits of an activation of this role (32 = float)."""
        if self.kind != "static" or role.role == LN_STATS:
            return 32
        for key in (role.key, role.role, role.group):
            if key in self.overrides:
                return int(self.overrides[key])
        return self.activation_bits

    @property
    def description(self) -> str:
        if self.kind == "float":
            return "float32"
        if self.kind == "weight_only":
            return f"weight-only int{self.weight_bits} ({'per-channel' if self.per_channel else 'per-tensor'}), " \
                   "float activations"
        w = f"int{self.weight_bits} {'per-channel' if self.per_channel else 'per-tensor'} weights"
        base = f"int{self.activation_bits} activations, {w}"
        if self.overrides:
            base += "; " + ", ".join(f"{k}: {'float' if v >= 32 else f'int{v}'}" for k, v in sorted(self.overrides.items()))
        return base

    def spec(self) -> str:
        """The string parse_scheme reads back."""
        if self.kind != "static" or not self.overrides:
            return self.name
        base = {8: "a8w8", 16: "a16w8"}[self.activation_bits] + ("" if self.per_channel else "-tensor")
        return base + ":" + ",".join(f"{k}={v}" for k, v in sorted(self.overrides.items()))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "spec": self.spec(), "kind": self.kind, "activation_bits": self.activation_bits,
                "weight_bits": self.weight_bits, "per_channel": self.per_channel, "overrides": dict(self.overrides),
                "description": self.description}


BUILTIN: dict[str, Scheme] = {
    "float": Scheme("float", kind="float"),
    "a8w8-tensor": Scheme("a8w8-tensor", activation_bits=8, per_channel=False),
    "a8w8": Scheme("a8w8", activation_bits=8),
    "a16w8": Scheme("a16w8", activation_bits=16),
    "a16w8-tensor": Scheme("a16w8-tensor", activation_bits=16, per_channel=False),
    "w8": Scheme("w8", kind="weight_only"),
}
ALIASES = {"weight-only": "w8", "a8w8-channel": "a8w8", "a8w8-per-tensor": "a8w8-tensor", "a8w8-per-channel": "a8w8",
           "fp32": "float", "a16w8-channel": "a16w8"}
_KEY = re.compile(r"^(b\d+\.)?[a-z_0-9]+$")


def parse_scheme(text: str, name: Optional[str] = None) -> Scheme:
    """'a16w8', 'a8w8-tensor', 'w8', 'mixed:resid=16,ln=16', 'a16w8:fc1=8,qkv=8' -> Scheme."""
    text = text.strip()
    base, _, rest = text.partition(":")
    base = ALIASES.get(base, base)
    if base == "mixed":
        base = "a8w8"
    if base not in BUILTIN:
        raise InvalidOptionError(f"unknown quantization scheme {text!r}: one of {', '.join(BUILTIN)}, or "
                                 "'mixed:GROUP=16,...' (groups: " + ", ".join(GROUPS) + ")")
    scheme = BUILTIN[base]
    if not rest:
        return scheme if name is None else Scheme(name, scheme.kind, scheme.activation_bits, scheme.weight_bits,
                                                  scheme.per_channel)
    if scheme.kind != "static":
        raise InvalidOptionError(f"{base} takes no per-role overrides")
    overrides: dict[str, int] = {}
    for item in rest.split(","):
        key, eq, value = item.strip().partition("=")
        if not eq or not _KEY.match(key):
            raise InvalidOptionError(f"scheme override {item!r}: expected GROUP=BITS, ROLE=BITS or bN.ROLE=BITS")
        role = key.split(".")[-1]
        if key not in GROUPS and role not in ROLES:
            raise InvalidOptionError(f"scheme override {item!r}: {key!r} is neither a group "
                                     f"({', '.join(GROUPS)}) nor a role ({', '.join(ROLES)})")
        try:
            bits = int(value)
        except ValueError:
            bits = 32 if value in ("float", "fp32", "32") else -1
        if bits not in (8, 16, 32):
            raise InvalidOptionError(f"scheme override {item!r}: bits must be 8, 16 or float")
        overrides[key] = bits
    return Scheme(name or ("mixed" if text.startswith("mixed") else text), "static", scheme.activation_bits,
                  scheme.weight_bits, scheme.per_channel, overrides)


# -- MACs -------------------------------------------------------------------------------------

def matmuls(dims: Any) -> list[tuple[str, int, tuple[Role, ...]]]:
    """(name, MACs, activation roles read and written) for every matrix product of the encoder."""
    d, n_mels, n_layer = dims.n_audio_state, dims.n_mels, dims.n_audio_layer
    t = dims.n_audio_ctx
    s = lambda name: Role(-1, name)  # noqa: E731
    out = [("conv1", 2 * t * n_mels * 3 * d, (s("mel"), s("conv1"))),
           ("conv2", t * d * 3 * d, (s("gelu1"), s("conv2")))]
    for b in range(n_layer):
        r = lambda name: Role(b, name)  # noqa: E731
        out += [(f"b{b}.q", t * d * d, (r("ln1"), r("q"))), (f"b{b}.k", t * d * d, (r("ln1"), r("k"))),
                (f"b{b}.v", t * d * d, (r("ln1"), r("v"))), (f"b{b}.qk", t * t * d, (r("q"), r("k"), r("qk"))),
                (f"b{b}.pv", t * t * d, (r("softmax"), r("v"), r("pv"))),
                (f"b{b}.out", t * d * d, (r("pv"), r("attn_out"))),
                (f"b{b}.fc1", t * d * 4 * d, (r("ln2"), r("fc1"))), (f"b{b}.fc2", t * 4 * d * d, (r("gelu"), r("fc2")))]
    return out


def mac_summary(scheme: Scheme, dims: Any) -> dict[str, Any]:
    """Total MACs, the int8 share and which products run in int8 / int16 x int8 / float. A
    product counts as int8 when every activation it reads and writes is 8-bit."""
    total = int8 = 0
    per: dict[str, str] = {}
    for name, macs, roles in matmuls(dims):
        total += macs
        bits = max(scheme.bits(r) for r in roles)
        kind = "float" if scheme.kind != "static" or bits >= 32 else ("int8" if bits <= 8 else "int16x8")
        per[name] = kind
        if kind == "int8":
            int8 += macs
    return {"total_macs": total, "int8_macs": int8, "int8_mac_share": int8 / total if total else 0.0,
            "products": per}
