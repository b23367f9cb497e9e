"""Text: sentiment scoring of tweets and headlines (see :mod:`repro.text.sentiment`)."""
