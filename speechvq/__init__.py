"""speechvq: unsupervised discrete speech units and voice conversion with VQ-VAEs.

After van den Oord, Vinyals and Kavukcuoglu, *Neural Discrete Representation Learning*
(NeurIPS 2017, arXiv:1711.00937).

The Python API (README, "Python API")::

    import speechvq
    model = speechvq.load("exp/vctk")                    # any task's checkpoint, eval mode
    codes = model.encode(wav, sr)                        # (T,) at sr Hz -> (Tc,) int64
    wav = model.decode(codes, speaker="p225", head="mel")   # (Tc * model.hop,) at model rate
    y = speechvq.convert(model, "a.wav", speaker="p225")    # (T',) float32 numpy

The names are looked up when first used (module ``__getattr__``, PEP 562), so ``import
speechvq`` imports neither torch nor any model: `load` is `speechvq.checkpoint.load_model`, and
`convert` is the module `speechvq.convert`, which is callable (its `convert.convert`).
"""

__version__ = "0.1.0"

# name -> (module, attribute in it; None: the module itself)
_LAZY = {"load": ("speechvq.checkpoint", "load_model"), "convert": ("speechvq.convert", None)}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'speechvq' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    value = importlib.import_module(module)
    return value if attr is None else getattr(value, attr)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
