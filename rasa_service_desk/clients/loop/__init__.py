"""Loop (Benbria): survey responses and loops through Loop's V1 REST API."""
