"""moqmls: end-to-end encrypted group media over Media over QUIC, keyed by MLS."""

__version__ = "0.1.0"
