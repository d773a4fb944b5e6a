"""Advance-fee fraud is phishing-class mail: recognised by its ingredients, trained as phishing, and its story counts
as what it asks for when it has no link or address."""

from __future__ import annotations

from mailsec.evaluate import training_label
from mailsec.mime import parse_message
from mailsec.scan.content import fraud_story
from mailsec.scan.features import extract_text
from mailsec.scan.fraud import fraud_ingredients, reads_like_advance_fee
from support import make_eml

LETTER = (
    "Dear friend, I am Barrister James Okoro, attorney to the late client who died with his family. He left the sum "
    "of US$12.5 million in a bank here in Lagos, Nigeria, and you are the next of kin. I need a foreign partner for "
    "the transfer of the funds; you will receive 30% of the total sum. This business is strictly confidential and "
    "100% risk free. Reply with your full name and telephone number."
)
INVOICE = (
    "Hello Dana, please find attached invoice 2024-118 for the March hosting plan (EUR 49.00). Payment is due within "
    "30 days by bank transfer to the account on the invoice. Thanks, the billing team"
)


def test_a_419_letter_has_the_ingredients_and_an_invoice_does_not() -> None:
    assert fraud_ingredients(LETTER) >= {"sum", "benefactor", "transfer", "secrecy", "place", "title"}
    assert reads_like_advance_fee(LETTER)
    assert not reads_like_advance_fee(INVOICE)
    assert len(fraud_ingredients(INVOICE)) < 2


def test_advance_fee_spam_trains_the_phishing_class() -> None:
    letter = parse_message(make_eml(subject="URGENT BUSINESS PROPOSAL", body=LETTER))
    offer = parse_message(make_eml(subject="Cheap meds", body="Lose weight fast, order now, free bonus!"))
    assert training_label("spam", letter) == "phishing"
    assert training_label("spam", offer) == "spam"
    assert training_label("ham", letter) == "ham"


def test_the_story_is_the_lure_of_an_addressless_letter() -> None:
    story = fraud_story(extract_text(parse_message(make_eml(sender="[removed]", body=LETTER))))
    assert story is not None and story.kinds == ("fraud",) and "benefactor" in story.evidence
    assert fraud_story(extract_text(parse_message(make_eml(body=INVOICE)))) is None
