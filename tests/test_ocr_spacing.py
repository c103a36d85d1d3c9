"""Spaces put back into what the OCR recogniser read. The inputs are lines RapidOCR gave on scans of
the shared corpus's NIST guides (bench/ocr_accuracy.py's pages), with the real unigram model."""

from __future__ import annotations

import pytest

from ingest.loaders import ocr
from ingest.loaders.ocr_spacing import respace

pytestmark = pytest.mark.skipif(not ocr.available(), reason="the ocr extra is not installed (make test installs it)")


# Where case says a word ends.
CASE_CUTS = [
    ("theuserSHALLbe", "the user SHALL be"),
    ("NISTSpecialPublication", "NIST Special Publication"),
    ("factorOTPauthenticatorisbeingassociatedwith", "factor OTP authenticator is being associated with"),
    ("thismediaintoaPCand", "this media into a PC and"),
    ("dependingonAAL", "depending on AAL"),
    ("GuidelinesforMediaSanitization", "Guidelines for Media Sanitization"),
]
# Glued words cut into words, not scraps.
WORD_CUTS = [
    # Words the unigram model lacks, made from words it has.
    ("sanitization", "sanitization"),
    ("thepropersanitizationprocedure", "the proper sanitization procedure"),
    ("toduplicatetheauthenticator", "to duplicate the authenticator"),
    ("issuedbytheverifier", "issued by the verifier"),
    ("theteleworkermightnotevenknow", "the teleworker might not even know"),
    ("Reauthentication", "Reauthentication"),
    # Common words the model cut correctly stay cut, though joined they would make a word.
    ("theattackermayhavealongerwindowofopportunity", "the attacker may have a longer window of opportunity"),
    ("toitsfactorydefaultsettings", "to its factory default settings"),
]
# Punctuation and numbers get their spaces.
PUNCTUATION = [
    ("OMB Memoranda 07-11,07-18,08-22;NIST", "OMB Memoranda 07-11, 07-18, 08-22; NIST"),
    ("FIPS Publication201", "FIPS Publication 201"),
    ("Related controls: AC-2,AC-3", "Related controls: AC-2, AC-3"),
    ("Authentication(Organizational Users)", "Authentication (Organizational Users)"),
    ("policies.Organizations should", "policies. Organizations should"),
    ("it costs 1,000 dollars, or 2,500-3,000", "it costs 1,000 dollars, or 2,500-3,000"),
    ("one user(s) only", "one user(s) only"),
]


@pytest.mark.parametrize(("read", "meant"), CASE_CUTS + WORD_CUTS + PUNCTUATION)
def test_spaces_go_back_between_words(read: str, meant: str) -> None:
    assert respace(read) == meant


@pytest.mark.parametrize("name", ["Murugiah", "iPhone", "JavaScript", "www.nist.gov", "e.g. this"])
def test_names_and_addresses_stay_as_written(name: str) -> None:
    assert respace(name) == name
