"""Typed errors: every front end (CLI, app) turns these into one clear line for the user."""


class UniVTGError(Exception):
    """Base class: the message is meant for the user and says what to do."""


# What every VideoReadError ends with: the one sentence that says what to do (the readers and SlowFast use it).
VIDEO_ACCEPTED = "Pass a complete video file (mp4, mkv, webm, mov, avi, ...) that plays in a media player."


class VideoReadError(UniVTGError):
    """The file is not a readable video (missing, corrupt, truncated, audio only, zero frames)."""


class StillImageError(VideoReadError):
    """The file is a still picture (an image, or a video of a single frame): it can be the example-image query."""


class VideoTooShortError(VideoReadError):
    """The video is shorter than one clip: no clip of it can be read as the model expects."""


class VideoTooLongError(UniVTGError):
    """The video is longer than the configured limit."""


class QueryError(UniVTGError):
    """The query is empty or unusable."""


class OptionError(UniVTGError, ValueError):
    """An option's value is not one of those accepted (the message lists them); a ValueError too, so callers
    that validated arguments with ValueError keep working."""


class CheckpointError(UniVTGError):
    """The checkpoint cannot be read or does not fit the encoder."""


class EncoderWeightsError(UniVTGError):
    """CLIP weights could not be found, downloaded or read."""


class UnsafeFileError(UniVTGError):
    """A file would run code when loaded (or is not the data it claims to be) and was refused."""


class UnknownModelError(UniVTGError):
    """No registered architecture has that name (the message lists the known ones)."""


class StoreError(UniVTGError):
    """The feature store cannot be read or written (the message names the folder and what to do)."""


class StoreFullError(StoreError):
    """The disk filled while writing the feature store; the partial entry was removed."""
