"""The one error type of the data layer: bad input, named (field, file, line) before any expensive work."""


class DataError(ValueError):
    """A data source, tokenizer or token cache that cannot be used; the message names the field or file."""
