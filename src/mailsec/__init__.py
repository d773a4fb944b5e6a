"""mailsec: a self-hosted e-mail security gateway and investigation platform."""

__version__ = "0.1.0"
