"""MoQ Secure Objects (draft-ietf-moq-secure-objects): sans-I/O end-to-end object encryption."""
