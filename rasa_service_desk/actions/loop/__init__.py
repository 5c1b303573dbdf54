"""Loop (Benbria): survey responses and loops from the conversation.

`survey` runs the survey form and submits the response; `feedback` creates loops (requests
and complaints); `status` tells the customer where their loops stand; `invite` hands out
Loop's invite link; `location` lets the customer pick the location (when enabled).
Importing this package enables all of them.
"""

from rasa_service_desk.actions.loop import feedback, invite, location, status, survey

__all__ = ["feedback", "invite", "location", "status", "survey"]
