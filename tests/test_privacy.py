"""console.privacy.redact: personal data out, ordinary numbers in."""

from __future__ import annotations

from typing import Any

import pytest
from phonenumbers import PhoneNumberMatcher as RealMatcher

from console import privacy
from console.privacy import contains_pii, redact

# What is redacted: one row per format (docs/redaction.md shows the same table).
REDACTED = [
    # cards: any grouping and separator; Luhn-checked, or named as a card number
    ("card 4111 1111 1111 1111 please", "card [card] please"),
    ("4111-1111-1111-1111", "[card]"),
    ("4111111111111111", "[card]"),
    ("4111.1111.1111.1111", "[card]"),
    ("4111 - 1111 - 1111 - 1111", "[card]"),
    ("4111/1111/1111/1111", "[card]"),
    ("4111  1111  1111  1111", "[card]"),
    ("amex 3782 822463 10005", "amex [card]"),
    ("mastercard 5555 5555 5555 4444 expiring 09/27", "mastercard [card] expiring 09/27"),
    ("card 4111 1111 1111 1111 2024", "card [card] 2024"),
    ("visa 4012888888881881 exp 12/26", "visa [card] exp 12/26"),
    ("my card number is 4111 1111 1111 1112", "my card number is [card]"),
    ("long number: 5555-5555-5555-4440", "long number: [card]"),
    # card security codes, named before or after
    ("my cvv is 123", "my cvv is [cvv]"),
    ("cvv 123", "cvv [cvv]"),
    ("CVC: 456", "CVC: [cvv]"),
    ("cvv2=789", "cvv2=[cvv]"),
    ("the 3 digit code on the back is 456", "the 3 digit code on the back is [cvv]"),
    (
        "security number on the back of my card is 321",
        "security number on the back of my card is [cvv]",
    ),
    ("amex cid? no, the 4-digit code is 1234", "amex cid? no, the 4-digit code is [cvv]"),
    ("123 is my cvv", "[cvv] is my cvv"),
    # one-time codes and PINs
    ("my one time code is 482913", "my one time code is [code]"),
    ("OTP 482913", "OTP [code]"),
    ("the verification code: 559201", "the verification code: [code]"),
    ("I got the code 8812 by text", "I got the code [code] by text"),
    ("security code 9921", "security code [code]"),
    ("passcode 246810", "passcode [code]"),
    ("482913 is the code they sent", "[code] is the code they sent"),
    ("my pin is 4321", "my pin is [pin]"),
    ("PIN: 0000", "PIN: [pin]"),
    # sort codes and account numbers next to their words
    ("sort code 12-34-56 account 12345678", "sort code [sort code] account [account]"),
    ("sortcode 123456", "sortcode [sort code]"),
    ("sort code is 12 34 56", "sort code is [sort code]"),
    ("account number 87654321", "account number [account]"),
    ("acct no. 11223344", "acct no. [account]"),
    ("a/c 55667788", "a/c [account]"),
    # passwords
    ("my password is hunter2", "my password is [password]"),
    ("password: Tr0ub4dor&3 thanks", "password: [password] thanks"),
    ("my password was maya@1990.", "my password was [password]."),
    ('pwd = "s3cret"', 'pwd = "[password]"'),
    ("my password is sunshine", "my password is [password]"),
    # IBANs
    ("IBAN GB82 WEST 1234 5698 7654 32 thanks", "IBAN [iban] thanks"),
    ("GB82-WEST-1234-5698-7654-32", "[iban]"),
    ("to DE89370400440532013000.", "to [iban]."),
    ("fr: FR14 2004 1010 0505 0001 3M02 606", "fr: [iban]"),
    # national ids
    ("ssn 536-22-1234", "ssn [id]"),
    ("ssn 536 22 1234", "ssn [id]"),
    ("SSN: 536221234", "SSN: [id]"),
    ("NI number AB 12 34 56 C", "NI number [id]"),
    ("nino ab123456c", "nino [id]"),
    ("DNI 12345678Z", "DNI [id]"),
    ("NIE X1234567L", "NIE [id]"),
    ("CF RSSMRA85T10A562S", "CF [id]"),
    ("pnr 811228-9874", "pnr [id]"),
    # emails
    ("mail maya.lee+bank@example.co.uk now", "mail [email] now"),
    ("MAYA@EXAMPLE.COM", "[email]"),
    # phones: national, international, spaced, with the trunk zero, after phone words
    ("call me on 07911 123456", "call me on [phone]"),
    ("+44 7911 123456", "[phone]"),
    ("+44 7700 900123", "[phone]"),
    ("+447700900123", "[phone]"),
    ("+44 (0)7700 900123", "[phone]"),
    ("+44 7700-900-123", "[phone]"),
    ("0044 7700 900123", "[phone]"),
    ("(415) 555-2671", "[phone]"),
    ("+1 415-555-2671 or 415.555.2671", "[phone] or [phone]"),
    ("+1 (415) 555 2671", "[phone]"),
    ("+33 6 12 34 56 78", "[phone]"),
    ("+46 70 123 45 67", "[phone]"),
    ("+49 30 901820", "[phone]"),
    ("+353 85 123 4567", "[phone]"),
    ("ring 020 7946 0958 today", "ring [phone] today"),
    ("my mobile is 07700 900 123", "my mobile is [phone]"),
    ("text me: 7700 900123", "text me: [phone]"),
]


@pytest.mark.parametrize(("text", "expected"), REDACTED)
def test_redacts(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert contains_pii(text)


def test_the_table_covers_sixty_formats() -> None:
    assert len(REDACTED) >= 60


# What must survive: amounts, dates, times, order and reference numbers, quantities.
KEPT = [
    "I paid £1,250.00 on 2024-03-12",
    "on 12/03/2024 I paid 45.99",
    "order 12345678 please",
    "ref 4482913001",
    "order #448291300123",
    "transaction 4111111111111112",
    "my card ending 1234 was charged 3 times",
    "I have 2 cards and 3 accounts",
    "amount 1000000",
    "order 536221234 arrived",
    "postcode SW1A 1AA",
    "I was charged 3 times: 12.99, 12.99 and 12.99",
    "€ 2 500,00 was taken at 14:32",
    "it costs 0.5% and takes 3-5 working days",
    "0000 0000 0000 0000",
    "pay-in-3 of £40 each",
    "version 1.2.3.4 of the app",
    "no digits at all, just words about my card",
    "",
    "invoice 2024-0042-7781 is overdue",
    "£4,111.11 left my account on 01.02.2024",
    "booking ref +1234567",
    "error code 500 in the app",
    "I topped up 1000 then 2500 then 12000",
    "my account had £12,345,678.90",
    "tracking number 1Z999AA10123456784",
    "between 10:30 and 11:45 on 3/4",
    "the 4 digit code never arrived",
    "I forgot my password",
    "my password isn't being accepted",
    "I don't know what my password is.",
    "my password is not working since 12/03",
    "call it {$40000.00} and we are done",
    "my pin doesn't work",
    "order 4111 1111 1111 1111 2",
]


@pytest.mark.parametrize("text", KEPT)
def test_leaves_ordinary_text(text: str) -> None:
    assert redact(text) == text
    assert not contains_pii(text)


def test_several_kinds_in_one_message() -> None:
    text = (
        "Hi, I'm Maya (maya@example.com, 07911 123456). My card 4111 1111 1111 1111 was "
        "charged £45.99 twice on 03/11; refund to GB82 WEST 1234 5698 7654 32 please."
    )
    out = redact(text)
    assert out == (
        "Hi, I'm Maya ([email], [phone]). My card [card] was charged £45.99 twice on "
        "03/11; refund to [iban] please."
    )


def test_digit_heavy_text_keeps_what_is_not_personal() -> None:
    # The cost of this case is measured by `tandem bench drafts` (no timing asserted here).
    digits = "I paid 45.99 on 12/03/2024 for order 12345678, call 07911 123456"
    out = redact(digits)
    assert "45.99" in out and "12/03/2024" in out and "12345678" in out
    assert "07911 123456" not in out


def test_the_slow_phone_matcher_reads_short_windows_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Redaction runs on every message, so phonenumbers' matcher (about 1 ms over a whole
    message and all regions) only ever sees a few characters around a digit run. Speed itself
    is measured by benchmarks; this pins down the shape that keeps it fast."""
    windows: list[str] = []

    def matcher(text: str, region: str, **kwargs: Any) -> Any:
        windows.append(text)
        return RealMatcher(text, region, **kwargs)

    monkeypatch.setattr(privacy, "PhoneNumberMatcher", matcher)
    redact("hi there my card is not working since yesterday, can you help?")
    assert windows == []  # no digits, no matcher
    filler = "my card is not working since yesterday, can you help? " * 200
    assert redact(filler + "call me on 07911 123456 please " + filler).count("[phone]") == 1
    assert windows and all(len(w) <= len("07911 123456") + 3 for w in windows)
    windows.clear()
    # Amounts, dates and references are not phone numbers: the matcher is not even asked.
    assert redact("I paid 45.99 on 12/03/2024 for order 12345678") == (
        "I paid 45.99 on 12/03/2024 for order 12345678"
    )
    assert windows == []
