"""Loop (Benbria): survey responses and loops from the conversation.

`survey` runs the survey form and submits the response; `feedback` creates loops (requests
and complaints). Importing this package enables both.
"""

from rasa_service_desk.actions.loop import feedback, survey

__all__ = ["feedback", "survey"]
