"""My Number Card: applications, production, pre-issuance setup, hand-over, the chip, JPKI."""
