"""The one error the face data readers raise: the file and what is wrong with it."""


class FaceDataError(ValueError):
  """Face data that cannot be read; the message names the file and the fault."""
