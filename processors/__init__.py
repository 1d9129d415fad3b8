"""Pure domain logic: decoding, triage, routing, deadlines. No I/O, no clock: time is an argument."""
