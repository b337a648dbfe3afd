"""recsys-assets: cold-start product recommendations for restaurants, as Dagster assets.

`recsys_assets.defs` is the Dagster `Definitions` object. It is loaded lazily so that the `recsys`
command line (which imports this package) starts fast and never pays for importing Dagster.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__", "defs"]


def __getattr__(name: str):
    if name == "defs":
        from recsys_assets.definitions import defs

        return defs
    raise AttributeError(f"module 'recsys_assets' has no attribute {name!r}")


def __dir__() -> list[str]:
    # Dagster's module discovery walks dir(module); listing `defs` lets it find the lazy attribute.
    return sorted([*globals(), "defs"])
