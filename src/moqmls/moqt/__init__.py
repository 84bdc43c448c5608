"""MoQ Transport (draft-ietf-moq-transport-18, and -22): sans-I/O core, aioquic adapter, relay."""
