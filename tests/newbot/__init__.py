"""A fresh `rasa init` bot gets one integration by the documented recipe (marker `newbot`)."""
