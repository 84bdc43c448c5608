"""The draft itself (draft-jennings-moq-e2ee-mls): MLS over MoQT tracks, keyed media."""
