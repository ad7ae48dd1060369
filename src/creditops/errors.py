"""Errors that the edges (CLI, servers) turn into clear messages instead of tracebacks."""


class CreditOpsError(Exception):
    """Base class: a problem the user can act on; the message says what and where."""


class DataError(CreditOpsError):
    """Input data is unreadable, corrupt or does not match its declared schema."""


class ConfigError(CreditOpsError):
    """Configuration is invalid (unknown key, bad value, unset ${VAR})."""


class GateFailure(CreditOpsError):
    """A model failed a validation gate and must not be registered for deployment."""


class BundleError(CreditOpsError):
    """A model bundle is missing, corrupt or does not match the feature contract."""
