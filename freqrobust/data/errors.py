"""The one error type of the data package."""


class DatasetError(RuntimeError):
  """A dataset is missing or damaged; the message names what and says how to fix it."""
