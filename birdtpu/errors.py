"""User-facing errors: each carries one line that says what is wrong and where."""


class BirdtpuError(Exception):
    """An error the CLI reports as one line (no traceback) with exit code 2."""


class ConfigError(BirdtpuError):
    """A recipe or override is invalid: unknown key, wrong type, value out of range."""


class DataError(BirdtpuError):
    """Input data is unusable: a missing file or column, a bad row, an unreadable recording."""


def shown(value) -> str:
    """`repr(value)` as the user wrote it: NumPy scalars as plain numbers (`0.5`, not `np.float64(0.5)`)."""
    return repr(
        value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else value
    )
