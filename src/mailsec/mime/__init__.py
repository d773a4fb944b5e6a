"""Raw bytes to `ParsedMessage`. Parse once; every later stage reads the model."""

from mailsec.mime.parse import parse_message

__all__ = ["parse_message"]
