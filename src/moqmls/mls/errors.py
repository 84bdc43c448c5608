"""The MLS error hierarchy: every failure of `moqmls.mls` is an `MLSError` subclass."""

from __future__ import annotations


class MLSError(Exception):
    """Base of every error raised by `moqmls.mls`."""


class DecodeError(MLSError):
    """Bytes that are not a valid encoding (RFC 9420 §2.1)."""


class TruncatedError(DecodeError):
    """The input ended before the value it announced."""


class TrailingDataError(DecodeError):
    """Bytes were left over after a complete value."""


class InvalidVarintError(DecodeError):
    """A variable-size length with the reserved "11" prefix or a non-minimal encoding."""


class InvalidOptionalError(DecodeError):
    """An optional<T> presence octet other than 0 or 1."""


class InvalidEnumError(DecodeError):
    """An enumerated value that this field does not admit."""


class EncodeError(MLSError):
    """A value that cannot be encoded (out of range, wrong variant)."""


class CryptoError(MLSError):
    """A cryptographic operation failed."""


class UnsupportedCipherSuiteError(CryptoError):
    """A cipher suite this implementation does not offer."""


class SignatureError(CryptoError):
    """A signature did not verify."""


class DecryptionError(CryptoError):
    """An AEAD or HPKE decryption failed."""


class ValidationError(MLSError):
    """A well-formed message that violates a rule of RFC 9420."""


class InvalidPaddingError(DecodeError):
    """PrivateMessageContent padding that is not all zero bytes (RFC 9420 §6.3.1)."""


class FramingError(ValidationError):
    """A message that does not belong where it arrived (RFC 9420 §6): wrong group, epoch,
    sender or wire format for its content."""


class MembershipTagError(FramingError):
    """A PublicMessage's membership tag did not verify (RFC 9420 §6.2)."""


class TreeMathError(MLSError):
    """A tree-math relation asked of a node that does not have it (RFC 9420 Appendix C)."""


class TreeError(ValidationError):
    """A ratchet tree that violates RFC 9420 §7 (shape, blanks, unmerged leaves, indices)."""


class TreeHashError(TreeError):
    """A tree hash that does not match the expected value (RFC 9420 §7.8)."""


class ParentHashError(TreeError):
    """A ratchet tree or UpdatePath whose parent hashes do not verify (RFC 9420 §7.9)."""


class UpdatePathError(ValidationError):
    """An UpdatePath that cannot be applied or decrypted (RFC 9420 §7.5-§7.6)."""


class LeafNodeValidationError(ValidationError):
    """A LeafNode that fails the checks of RFC 9420 §7.3."""


class InvalidKeyError(CryptoError):
    """Key bytes that do not encode a key of the cipher suite (RFC 9180 §7.1.1)."""


class SecretTreeError(CryptoError):
    """A secret-tree lookup that RFC 9420 §9 forbids or that cannot be served."""


class SecretReuseError(SecretTreeError):
    """A generation whose key was already consumed and deleted (RFC 9420 §9.2)."""


class GenerationTooFarError(SecretTreeError):
    """A generation beyond the allowed distance ahead of the ratchet (RFC 9420 §9.1)."""


class KeyPackageError(ValidationError):
    """A KeyPackage that fails the checks of RFC 9420 §10.1."""


class ProposalError(ValidationError):
    """A proposal or proposal list that RFC 9420 §12.1-§12.2 makes invalid."""


class UnknownProposalError(ProposalError):
    """A commit referencing a proposal this member has not received this epoch (§12.4)."""


class CommitError(ValidationError):
    """A commit that fails the processing rules of RFC 9420 §12.4.2 (path, confirmation tag)."""


class ConfirmationTagError(CommitError):
    """A confirmation tag that does not match the one computed locally (RFC 9420 §8.1)."""


class WelcomeError(ValidationError):
    """A Welcome that cannot be used to join (RFC 9420 §12.4.3.1)."""


class MissingPSKError(ValidationError):
    """A pre-shared key the message needs and this member does not hold (RFC 9420 §8.4)."""


class GroupStateError(MLSError):
    """An operation the group's current state does not allow (removed member, wrong epoch,
    own message echoed back, stale pending commit)."""
