"""The package's version, in a module of its own: `from ..version import __version__` imports
nothing else (the package's `__init__` names every public class, if only for type checkers)."""

__version__ = "0.1.0"
