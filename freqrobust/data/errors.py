"""The data room's one error type."""


class DatasetError(RuntimeError):
  """A dataset is missing or damaged; the message names what and says how to fix it."""
