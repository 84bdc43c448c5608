"""The e2ee error hierarchy: every failure of `moqmls.e2ee` is an `E2EEError` subclass."""

from __future__ import annotations


class E2EEError(Exception):
    """Base of every error raised by `moqmls.e2ee`."""


class NotMemberError(E2EEError):
    """The operation needs a member of the group (joined and not removed)."""


class MemberClosedError(E2EEError):
    """The member left, was removed, or was closed."""


class RejectedObjectError(E2EEError):
    """An object received on a group track was malformed, forged or not acceptable."""


class KeyPackageRejectedError(RejectedObjectError):
    """A KeyPackage failed validation (signature, suite, lifetime or identity)."""


class CommitRejectedError(RejectedObjectError):
    """A Commit could not be applied to the group state."""


class WelcomeNotForUsError(RejectedObjectError):
    """A Welcome that does not carry a secret for any of our KeyPackages."""


class WelcomeRejectedError(RejectedObjectError):
    """A Welcome for us that failed RFC 9420 §12.4.3.1 processing."""


class ProposalRejectedError(RejectedObjectError):
    """A Proposal-track object that is not a valid leave request from its track's sender."""


class ReceiptRejectedError(RejectedObjectError):
    """A lock-service receipt that does not prove the object's epoch winner (DESIGN.md)."""


class MediaKeyError(E2EEError):
    """No media key for the requested namespace and epoch."""


class ConvergenceError(E2EEError):
    """A run (demo, test helper) did not reach the expected common state in time."""
