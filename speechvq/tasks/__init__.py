"""The built-in tasks. Importing this package registers each of them with the core
(`speechvq.registry`); `speechvq.registry.get_task` does so on first use."""

from speechvq.tasks import image  # noqa: F401  (registers "image")
from speechvq.tasks import prior  # noqa: F401  (registers "prior")
from speechvq.tasks import speech  # noqa: F401  (registers "speech")
