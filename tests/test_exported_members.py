"""The public Python surface is exactly `__all__`, and every name in it works after any import."""

import importlib

import synthboot


def test_exported_members():
    exported = {name for name in dir(synthboot) if not name.startswith("_")}
    public_modules = {name for name in exported if type(getattr(synthboot, name)).__name__ == "module"}
    assert set(synthboot.__all__) == exported - public_modules
    # Importing every submodule must not shadow a public function (as a `status` module once did).
    for module in ("status", "dataset", "pipeline", "stages", "store", "spec", "schema", "cli", "check"):
        importlib.import_module(f"synthboot.{module}")
    for name in synthboot.__all__:
        assert type(getattr(synthboot, name)).__name__ != "module", name
