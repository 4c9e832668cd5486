"""The StyleGAN2 networks' op signatures: every distinct bias_act / upfirdn2d call of one G forward + one D
forward (training mode) of the recipe, with how often it occurs and which layers make it (on fake tensors: no
memory, no arithmetic)."""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

from .common import BA, DTYPE_SHORT, UD, one_line, patched


@dataclass(frozen=True)
class OpSig:
    """One distinct call of bias_act or upfirdn2d, with every argument normalised as the op itself does."""

    op: str  # 'bias_act' | 'upfirdn2d'
    shape: tuple[int, ...]
    dtype: str  # 'float32', ...
    channels_last: bool = False
    # bias_act
    dim: int = 1
    act: str = ""
    alpha: float = 0.0
    gain: float = 1.0
    clamp: float = -1.0  # < 0: none
    has_bias: bool = False
    # upfirdn2d (gain above is its gain too)
    up: tuple[int, int] = (1, 1)
    down: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    flip_filter: bool = False
    f_shape: tuple[int, ...] = ()  # () = no filter
    f_taps: tuple = field(default=(), repr=False)  # the filter's values (nested tuples), so it can be rebuilt

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def shape_str(self) -> str:
        s = "x".join(map(str, self.shape)) + " " + DTYPE_SHORT.get(self.torch_dtype, self.dtype)
        return s + (" cl" if self.channels_last else "")

    def params_str(self) -> str:
        if self.op == "bias_act":
            p = [self.act]
            if self.act in BA.ACTIVATIONS and self.alpha != BA.ACTIVATIONS[self.act].def_alpha:
                p.append(f"a={self.alpha:g}")
            if self.gain != 1:
                p.append(f"g={self.gain:.3g}")
            if self.clamp >= 0:
                p.append(f"c={self.clamp:g}")
            if not self.has_bias:
                p.append("no-b")
            if self.dim != 1:
                p.append(f"dim={self.dim}")
            return " ".join(p)
        p = []
        if self.up != (1, 1):
            p.append(f"up{self.up[0]}" if self.up[0] == self.up[1] else f"up{self.up}")
        if self.down != (1, 1):
            p.append(f"down{self.down[0]}" if self.down[0] == self.down[1] else f"down{self.down}")
        p.append("pad" + ",".join(map(str, self.padding)))
        p.append("f" + "x".join(map(str, self.f_shape)) if self.f_shape else "f1")
        if self.gain != 1:
            p.append(f"g={self.gain:g}")
        if self.flip_filter:
            p.append("flip")
        return " ".join(p)

    def with_layout(self, dtype: torch.dtype | None = None, channels_last: bool | None = None) -> "OpSig":
        """The same call in another dtype / memory format (channels_last only applies to 4-D tensors)."""
        changes: dict[str, Any] = {}
        if dtype is not None:
            changes["dtype"] = str(dtype).removeprefix("torch.")
        if channels_last is not None:
            changes["channels_last"] = bool(channels_last) and len(self.shape) == 4
        return dataclasses.replace(self, **changes)


@dataclass
class Recorded:
    sig: OpSig
    count: int = 0  # calls per G+D forward
    where: set[str] = field(default_factory=set)  # 'G.SynthesisLayer', 'D.Conv2dLayer', ...

    def where_str(self) -> str:
        return ",".join(sorted(self.where))


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def stylegan2_config(size: int, batch: int | None = None, overrides: dict | None = None, dtype: str = "net"):
    """The recipe's resolved StyleGAN2Config for this size. dtype: 'net' = the preset's reduced-precision
    layers as they are; 'float32' = none (num_fp16_res=0); 'float16'/'bfloat16' = the preset's layers in it."""
    from stylegan_anime.stylegan2.recipe import StyleGAN2, resolve

    over = dict(overrides or {})
    if batch is not None:
        over["batch"] = batch
    if dtype == "float32":
        over["num_fp16_res"] = 0
    elif dtype in ("float16", "bfloat16"):
        over["fp16_dtype"] = dtype
    return resolve(StyleGAN2.make_config(**over), size)


def build_networks(size: int, batch: int | None = None, overrides: dict | None = None, dtype: str = "net",
                   device: torch.device | str = "cpu", seed: int = 0):
    """(G, D, cfg) of the StyleGAN2 recipe at `size` in training mode, built as the recipe builds them."""
    from stylegan_anime.stylegan2.discriminator import Discriminator
    from stylegan_anime.stylegan2.generator import Generator
    from stylegan_anime.stylegan2.recipe import network_kwargs

    cfg = stylegan2_config(size, batch, overrides, dtype)
    G_kwargs, D_kwargs = network_kwargs(cfg, size)
    torch.manual_seed(seed)
    G = Generator(**G_kwargs).to(device).train()
    D = Discriminator(**D_kwargs).to(device).train()
    return G, D, cfg


class SignatureRecorder:
    """Wraps bias_act.bias_act and upfirdn2d.upfirdn2d (module attributes: what the layers and the
    upsample2d/downsample2d helpers call) and hooks every submodule of the networks to know which layer calls.
    The wrapped calls run the reference implementation."""

    def __init__(self) -> None:
        self.records: dict[OpSig, Recorded] = {}
        self._stack: list[str] = []
        self.taps_of: dict[int, tuple] = {}  # id(fake tensor) -> the values of the real one (small ones: filters)
        self._orig_bias_act = BA.bias_act
        self._orig_upfirdn2d = UD.upfirdn2d
        self._ba_sig = inspect.signature(BA.bias_act)
        self._ud_sig = inspect.signature(UD.upfirdn2d)

    # --- op wrappers -------------------------------------------------------------------------------
    def _add(self, sig: OpSig) -> None:
        rec = self.records.setdefault(sig, Recorded(sig))
        rec.count += 1
        rec.where.add(self._stack[-1] if self._stack else "?")

    def bias_act(self, *args, **kwargs):
        a = self._ba_sig.bind(*args, **kwargs)
        a.apply_defaults()
        x, b, act = a.arguments["x"], a.arguments["b"], a.arguments["act"]
        spec = BA.ACTIVATIONS.get(act)
        if spec is not None and isinstance(x, torch.Tensor) and x.ndim > 0:
            alpha, gain, clamp = a.arguments["alpha"], a.arguments["gain"], a.arguments["clamp"]
            self._add(OpSig(
                op="bias_act", shape=tuple(x.shape), dtype=_dtype_name(x.dtype), channels_last=_is_channels_last(x),
                dim=a.arguments["dim"] % x.ndim, act=act,
                alpha=float(spec.def_alpha if alpha is None else alpha),
                gain=float(spec.def_gain if gain is None else gain),
                clamp=-1.0 if clamp is None else float(clamp), has_bias=b is not None))
        a.arguments["impl"] = "ref"
        return self._orig_bias_act(*a.args, **a.kwargs)

    def upfirdn2d(self, *args, **kwargs):
        a = self._ud_sig.bind(*args, **kwargs)
        a.apply_defaults()
        x, f = a.arguments["x"], a.arguments["f"]
        if isinstance(x, torch.Tensor) and x.ndim == 4:
            taps: tuple = ()
            if f is not None:
                taps = self.taps_of.get(id(f), ())
                if not taps and type(f) is torch.Tensor:  # a real forward
                    taps = _nested_tuple(f.detach().cpu().tolist())
            self._add(OpSig(
                op="upfirdn2d", shape=tuple(x.shape), dtype=_dtype_name(x.dtype), channels_last=_is_channels_last(x),
                gain=float(a.arguments["gain"]), up=UD._parse_scaling(a.arguments["up"], "up"),
                down=UD._parse_scaling(a.arguments["down"], "down"),
                padding=UD._parse_padding(a.arguments["padding"]), flip_filter=bool(a.arguments["flip_filter"]),
                f_shape=tuple(f.shape) if f is not None else (), f_taps=taps))
        a.arguments["impl"] = "ref"
        return self._orig_upfirdn2d(*a.args, **a.kwargs)

    # --- layer tracking ----------------------------------------------------------------------------
    def _push(self, label: str) -> None:  # hooks must return None (a value would replace the input/output)
        self._stack.append(label)

    def _pop(self) -> None:
        self._stack.pop()

    @contextlib.contextmanager
    def track(self, net: torch.nn.Module, name: str) -> Iterator[None]:
        handles = []
        for m in net.modules():
            label = f"{name}.{type(m).__name__}"
            handles.append(m.register_forward_pre_hook(lambda mod, inp, label=label: self._push(label)))
            handles.append(m.register_forward_hook(lambda mod, inp, out: self._pop()))
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        with patched(BA, "bias_act", self.bias_act), patched(UD, "upfirdn2d", self.upfirdn2d):
            yield

    def sorted_records(self) -> list[Recorded]:
        order = {"bias_act": 0, "upfirdn2d": 1}
        return sorted(self.records.values(), key=lambda r: (order.get(r.sig.op, 9), r.sig.op,
                                                            -math.prod(r.sig.shape), r.sig.params_str(), r.sig.shape))


def _nested_tuple(v):
    return tuple(_nested_tuple(i) for i in v) if isinstance(v, list) else float(v)


def _forward_G_D(G: torch.nn.Module, D: torch.nn.Module, batch: int, device: torch.device,
                 rec: SignatureRecorder) -> None:
    z = torch.randn([batch, G.z_dim], device=device)
    c = torch.zeros([batch, G.c_dim], device=device)
    with rec.track(G, "G"):
        img = G(z, c)
    with rec.track(D, "D"):
        D(img, torch.zeros([batch, D.c_dim], device=device))


def record_signatures(size: int, batch: int | None = None, overrides: dict | None = None, dtype: str = "net",
                      device: torch.device | str = "cpu", fake: bool = True) -> tuple[list[Recorded], dict]:
    """The distinct bias_act / upfirdn2d calls of one G forward + one D forward (training mode) of the
    StyleGAN2 recipe at `size`, with their counts; and info ({'batch', 'mode', 'G_params', 'D_params', ...}).

    fake=True runs the forward on FakeTensors of `device` (exact shapes, dtypes and strides, no compute);
    if that fails (a private torch API), or with fake=False, a real forward under no_grad is run instead.
    """
    device = torch.device(device)
    G, D, cfg = build_networks(size, batch, overrides, dtype, device)
    info: dict[str, Any] = dict(size=size, batch=cfg.batch, channel_base=cfg.channel_base,
                                channel_max=cfg.channel_max, num_fp16_res=cfg.num_fp16_res, fp16_dtype=cfg.fp16_dtype,
                                G_params=sum(p.numel() for p in G.parameters()),
                                D_params=sum(p.numel() for p in D.parameters()))
    if fake:
        rec = SignatureRecorder()
        try:
            from torch._subclasses.fake_tensor import FakeTensorMode

            mode = FakeTensorMode()

            def to_fake(t: torch.Tensor) -> torch.Tensor:
                ft = mode.from_tensor(t)
                if t.numel() <= 256:  # the filters (and other small tensors): keep their values for the timing
                    rec.taps_of[id(ft)] = _nested_tuple(t.detach().cpu().tolist())
                return ft

            G._apply(to_fake)
            D._apply(to_fake)
            with mode, rec.active():
                _forward_G_D(G, D, cfg.batch, device, rec)
            info["mode"] = "fake tensors"
            return rec.sorted_records(), info
        except Exception as e:  # noqa: BLE001 - fall back to a real forward
            info["fake_error"] = one_line(e)
            G, D, cfg = build_networks(size, batch, overrides, dtype, device)
    rec = SignatureRecorder()
    with torch.no_grad(), rec.active():
        _forward_G_D(G, D, cfg.batch, device, rec)
    info["mode"] = "real forward"
    return rec.sorted_records(), info
