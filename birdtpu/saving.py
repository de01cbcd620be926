"""The one way to register and load birdtpu's Keras objects (layers, models, losses, metrics, schedules).

Every custom Keras class is decorated with `@register`, which registers it for serialization under
the package name "birdtpu". `load_model` imports every module of the packages that may hold such
classes (found by walking them, not from a hand-kept list) and loads with `safe_mode=True`; every
loader in birdtpu goes through it.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil

import keras

PACKAGE = "birdtpu"
# the packages whose modules may define registered classes; a test checks that none lives elsewhere
KERAS_PACKAGES = ("birdtpu.layers", "birdtpu.models", "birdtpu.train", "birdtpu.metrics")
# modules that need an optional extra: skipped where it is not installed
OPTIONAL = {"birdtpu.layers.kapre_mel": "kapre"}


def register(cls):
    """Class decorator: register `cls` for Keras serialization as `birdtpu>ClassName`."""
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)


def import_keras_modules() -> list[str]:
    """Import every module of `KERAS_PACKAGES` (so every registered class is known); their names."""
    names = []
    for package_name in KERAS_PACKAGES:
        package = importlib.import_module(package_name)
        names.append(package_name)
        for info in pkgutil.walk_packages(
            getattr(package, "__path__", []), prefix=package_name + "."
        ):
            needs = OPTIONAL.get(info.name)
            if needs and importlib.util.find_spec(needs) is None:
                continue
            importlib.import_module(info.name)
            names.append(info.name)
    return names


def registered() -> dict[str, type]:
    """Every class registered under the birdtpu package, by its registered name (`birdtpu>Name`)."""
    import_keras_modules()
    objects = keras.saving.get_custom_objects()
    return {name: obj for name, obj in objects.items() if name.startswith(PACKAGE + ">")}


def load_model(path: str, compile: bool = False):
    """A `.keras` file saved by birdtpu (or any Keras model using its layers), loaded with
    `safe_mode=True` after every birdtpu layer module is imported."""
    import_keras_modules()
    return keras.saving.load_model(path, compile=compile, safe_mode=True)
