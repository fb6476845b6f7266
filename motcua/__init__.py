"""motcua: signed citizen ratings at one-stop counters, turned into evidence-backed evaluation scores."""

__version__ = "0.1.0"
